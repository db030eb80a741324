"""The `tekscore` command: the root typer app and the loading of the commands.

The scheduler's own commands are listed in `BUILTIN` with the module that registers them;
commands of `scoring_service`, `scoring_flow` and `tekton` come through the `tekscore.cli`
entry-point group (each entry, named after its command, a `register(app)` function), so this
package never imports them (DESIGN.md section 1). An invocation loads only what it runs: a
built-in command loads its own module (no entry-point scan), a plugin command (`tekscore
serve-model`, `flow`, `baked`, `task`) loads only that entry, so scoring processes start without
the scheduler; `tekscore --help` loads every command's module, each light (typer only at import
time). No I/O at import time.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from scheduler.cli.lean import EntryPoint

GROUP = "tekscore.cli"
_IR = "scheduler.cli.ir_commands"
_JOBS = "scheduler.cli.jobs_commands"

# Every command of the scheduler's own, and the module whose `register(app)` adds it.
BUILTIN: dict[str, str] = {
    "validate": _IR,
    "render": _IR,
    "schema": _IR,
    "serve": _JOBS,
    "submit": _JOBS,
    "run": _JOBS,
    "status": _JOBS,
    "list": _JOBS,
    "events": _JOBS,
    "cancel": _JOBS,
    "logs": _JOBS,
}
# Commands that print an answer and end: the process ends as soon as they have (`lean.exit_now`)
CLIENT = frozenset({"validate", "render", "schema", "submit", "status", "list", "events", "cancel"})


def _plugins() -> dict[str, EntryPoint]:
    from scheduler.cli.lean import entry_points

    return {e.name: e for e in entry_points(GROUP)}


def create_app(command: str | None = None) -> typer.Typer:
    """The root app; with `command` naming a command, only the module of that command is
    loaded (any other name, or none, loads them all: for help and usage errors)."""
    app = typer.Typer(
        name="tekscore",
        help="Scoring-pipeline orchestrator: validate and render IR, run scoring jobs.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # plain click help: rich's help formatter costs more than the rest
    )

    @app.callback()
    def root() -> None:
        """Scoring-pipeline orchestrator: validate and render IR, run scoring jobs."""

    if command in BUILTIN:
        import_module(BUILTIN[command]).register(app)
        return app
    plugins = _plugins()
    if command in plugins:
        plugins[command].load()(app)
        return app
    for module in dict.fromkeys(BUILTIN.values()):
        import_module(module).register(app)
    loaded: set[str] = set()
    for name in sorted(plugins):
        if plugins[name].value not in loaded:  # one register() may add several commands
            loaded.add(plugins[name].value)
            plugins[name].load()(app)
    return app


def main() -> None:
    """Console-script entry point: the app's click command, with the start-up trims of
    `scheduler.cli.lean` (httpx without its own CLI, str, bool and choice parameters checked
    without pydantic, only the command that runs built, the root help listed from
    parameterless copies of the commands, the process ended as soon as a client command has
    answered)."""
    from typer.main import get_command

    from scheduler.cli.lean import exit_now, for_listing, lighten, only, without_httpx_cli

    without_httpx_cli()
    args = sys.argv[1:]
    app = create_app(args[0] if args else None)
    # the root help lists the commands and runs none; else only the command that runs is built
    app = for_listing(app) if args[:1] in ([], ["--help"]) else only(app, args[0])
    command = get_command(app)
    lighten(command)
    try:
        command()
    except SystemExit as done:
        if not args or args[0] in CLIENT or args[0] == "--help":
            exit_now(done.code)
        raise
