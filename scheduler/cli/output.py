"""How `tekscore` commands print: `-o table|json|yaml`, consoles that never wrap or truncate
when the stream is not a terminal, and the exit codes of commands that wait for a job.

Writes to stdout and stderr only. Any command can use it: declare `output: OutputOpt =
Output.table`, then `emit(data, output, table=render)` where `render(data)` builds the table
(`table(...)` below) and `data` is the API's object, printed as it is for json and yaml.
Imports stay light (typer, stdlib): rich and yaml are imported when something is printed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

# Exit codes of the commands that follow a job to its end (`run`, `submit --wait`). A command
# that cannot do its work (server unreachable, an API error, invalid IR) also exits 1.
EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # click's own code for a usage error (bad option, missing argument)
EXIT_CANCELLED = 3

# Wide enough that no line is ever folded: a script reading the output gets whole lines.
_UNBOUNDED_WIDTH = 1 << 20


class Output(StrEnum):
    """What a command prints: a table for people, or the API's object for programs."""

    table = "table"
    json = "json"
    yaml = "yaml"


OutputOpt = Annotated[
    Output,
    typer.Option(
        "--output",
        "-o",
        case_sensitive=False,
        help="table (for people), json or yaml (the API's object, for programs).",
    ),
]


def exit_code(state: str) -> int:
    """The exit code for a job that ended in `state`: 0 succeeded, 3 cancelled, 1 otherwise."""
    if state == "SUCCEEDED":
        return EXIT_SUCCEEDED
    if state == "CANCELLED":
        return EXIT_CANCELLED
    return EXIT_FAILED


def is_terminal(stream: IO[str]) -> bool:
    """Whether `stream` is a terminal (a person is reading it)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def console(*, stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr). On a terminal it fits the window; otherwise it
    prints no colour and never folds or cuts a line, whatever its length."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if is_terminal(stream):
        return Console(file=stream, highlight=False)
    return Console(
        file=stream,
        width=_UNBOUNDED_WIDTH,
        no_color=True,
        highlight=False,
        soft_wrap=True,
        emoji=False,
    )


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    right: Sequence[str] = (),
) -> Table:
    """A table of text cells. On a terminal cells fold rather than being cut short (an id is
    never shortened to `j-ab…`); off a terminal it has no box, so `awk '{print $1}'` works."""
    from rich import box
    from rich.table import Table

    plain = not is_terminal(sys.stdout)
    out = Table(
        title=None if plain else title,
        title_justify="left",
        box=None if plain else box.ROUNDED,
        show_edge=not plain,
        pad_edge=not plain,
        header_style="" if plain else "bold",
    )
    for name in columns:
        out.add_column(
            name.upper() if plain else name,
            justify="right" if name in right else "left",
            overflow="fold",
            no_wrap=plain,
        )
    for row in rows:
        out.add_row(*(cell or ("-" if plain else "") for cell in row))
    return out


def print_json(data: Any, *, compact: bool = False) -> None:
    """`data` as JSON on stdout: indented, or one line (JSON Lines, for streams)."""
    text = json.dumps(data, ensure_ascii=False, indent=None if compact else 2)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def print_yaml(data: Any, *, document: bool = False) -> None:
    """`data` as YAML on stdout; `document` starts it with `---` (for streams)."""
    import yaml

    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    sys.stdout.write(("---\n" if document else "") + text)
    sys.stdout.flush()


def emit(
    data: Any, output: Output, *, table: Callable[[Any], RenderableType | None] | None = None
) -> None:
    """Print `data` (the API's object) as `output`; for a table, `table(data)` renders it."""
    if output is Output.json:
        print_json(data)
    elif output is Output.yaml:
        print_yaml(data)
    elif table is not None:
        rendered = table(data)
        if rendered is not None:
            show(rendered)


def show(renderable: RenderableType) -> None:
    """Print a rich renderable on stdout; off a terminal, each line without trailing blanks."""
    out = console()
    if out.is_terminal:
        out.print(renderable)
        return
    with out.capture() as captured:
        out.print(renderable)
    text = "\n".join(line.rstrip() for line in captured.get().splitlines())
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    """An error on stderr, each of its lines printed whole (never folded)."""
    for line in message.splitlines() or [""]:
        typer.echo(line, err=True)
