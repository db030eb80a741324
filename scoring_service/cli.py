"""placeholder: commands are added by a later change."""

import typer


def register(app: typer.Typer) -> None:
    """Add nothing yet."""
