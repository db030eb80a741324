"""The scheduling server: FastAPI app, the job service (`jobs`) over a job store (`stores/`) and a
runner (`runners/`), the state machine and the job rules, and the `tekscore` CLI.

May import `ir`, `tekton` and `local_runner`; starts scoring services and flows by command line,
never by import.
"""
