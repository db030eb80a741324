"""`tekscore task ...`: placeholder until the task entrypoints land."""

import typer


def register(app: typer.Typer) -> None:
    """Add nothing yet."""
