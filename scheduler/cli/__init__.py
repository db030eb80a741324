"""The `tekscore` command line: IR commands here, the rest registered by entry point."""
