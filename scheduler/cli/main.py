"""The `tekscore` command: the root typer app and the loading of other packages' commands.

Commands of `scoring_service`, `scoring_flow` and `tekton` are added through the
`tekscore.cli` entry-point group (each entry, named after its command, a `register(app)`
function), so this package never imports them (DESIGN.md section 1). A process started for one
of those commands (`tekscore serve-model`, `flow`, `baked`, `task`) loads only that entry:
scoring processes start without importing the scheduler, the IR commands or rich.
No I/O at import time.
"""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint, entry_points

import typer

GROUP = "tekscore.cli"


def _plugins() -> dict[str, EntryPoint]:
    return {e.name: e for e in entry_points(group=GROUP)}


def create_app(command: str | None = None) -> typer.Typer:
    """The root app; with `command` naming a plugin command, only that command is loaded."""
    app = typer.Typer(
        name="tekscore",
        help="Scoring-pipeline orchestrator: validate and render IR, run scoring jobs.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def root() -> None:
        """Scoring-pipeline orchestrator: validate and render IR, run scoring jobs."""

    plugins = _plugins()
    if command in plugins:
        plugins[command].load()(app)
        return app
    from scheduler.cli import ir_commands, jobs_commands

    ir_commands.register(app)
    jobs_commands.register(app)
    loaded: set[str] = set()
    for name in sorted(plugins):
        if plugins[name].value not in loaded:  # one register() may add several commands
            loaded.add(plugins[name].value)
            plugins[name].load()(app)
    return app


def main() -> None:
    """Console-script entry point."""
    create_app(sys.argv[1] if len(sys.argv) > 1 else None)()
