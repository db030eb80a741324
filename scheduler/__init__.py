"""The scheduling server: FastAPI app, job store, state machine, backends and the `tekscore` CLI.

May import `ir` and `tekton`; starts scoring services and flows by command line, never by import.
"""
