"""The `tekscore` command: the root typer app and the loading of other packages' commands.

Commands of `scoring_service`, `scoring_flow` and `tekton` are added through the
`tekscore.cli` entry-point group (each entry a `register(app)` function), so this package
never imports them (DESIGN.md section 1). No I/O at import time.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

from scheduler.cli import ir_commands, jobs_commands


def create_app() -> typer.Typer:
    """Build the root app with every command registered."""
    app = typer.Typer(
        name="tekscore",
        help="Scoring-pipeline orchestrator: validate and render IR, run scoring jobs.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    ir_commands.register(app)
    jobs_commands.register(app)
    for entry in sorted(entry_points(group="tekscore.cli"), key=lambda e: e.name):
        entry.load()(app)
    return app


def main() -> None:
    """Console-script entry point."""
    create_app()()
