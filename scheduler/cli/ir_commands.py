"""`tekscore validate`, `render` and `schema`: the IR on the command line.

Reads IR files and writes the values file; errors print one per line as
`FILE:LINE: PATH: MESSAGE` and exit 1. Imports stay light: the `ir` package (pydantic models)
is imported when a command runs, so `tekscore --help` does not load it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import ir

Paths = Annotated[list[Path], typer.Argument(help="IR files or folders (read in sorted order).")]
Params = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="Parameter override NAME=VALUE (repeatable)."),
]
Channels = Annotated[
    Path | None,
    typer.Option(
        "--channels",
        envvar="TEKSCORE_CHANNELS",
        help="Channel registry: a folder of DataChannel documents and FastScore descriptors.",
    ),
]
Globals = Annotated[Path | None, typer.Option("--globals", help="The server's globals file.")]


def parse_params(items: list[str] | None) -> dict[str, str]:
    """`NAME=VALUE` pairs as a dict; a malformed pair is a usage error."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="-p")
        out[name] = value
    return out


def render_paths(
    paths: list[Path],
    *,
    params: list[str] | None,
    channels: Path | None,
    globals_file: Path | None,
    job_id: str | None = None,
) -> ir.Rendered:
    """Load and pre-process; on IR errors print them and exit 1."""
    import ir

    try:
        docs = ir.load_paths(paths)
        registry = ir.load_registry(channels)
        globals_ = ir.load_globals(globals_file)
        return ir.preprocess(
            docs,
            parameters=parse_params(params),
            registry=registry,
            globals_=globals_,
            job=ir.JobInfo(id=job_id),
        )
    except ir.IRValidationError as exc:
        for issue in exc.issues:
            typer.echo(str(issue))
        raise typer.Exit(1) from None


def validate(paths: Paths, param: Params = None, channels: Channels = None) -> None:
    """Check IR files: every problem as FILE:LINE: PATH: MESSAGE, or a one-line summary."""
    rendered = render_paths(paths, params=param, channels=channels, globals_file=None)
    typer.echo(f"valid: {rendered.summary()}")


def render(
    paths: Paths,
    param: Params = None,
    channels: Channels = None,
    globals_file: Globals = None,
    job_id: Annotated[str | None, typer.Option(help="Job id (default: the pipeline name).")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here, not stdout.")
    ] = None,
) -> None:
    """Pre-process IR files into the one Helm values file."""
    from common.files import atomic_write

    rendered = render_paths(
        paths, params=param, channels=channels, globals_file=globals_file, job_id=job_id
    )
    if output is None:
        typer.echo(rendered.text, nl=False)
    else:
        atomic_write(output, rendered.text, fsync=False)
        typer.echo(f"wrote {output}: {rendered.summary()}", err=True)


def schema(
    kind: Annotated[
        str | None, typer.Argument(help="One kind (e.g. ScoringFlow); default: every kind.")
    ] = None,
    values: Annotated[bool, typer.Option("--values", help="The values file's schema.")] = False,
) -> None:
    """Print the JSON Schema of the IR (or of one kind, or of the values file)."""
    import ir

    if values:
        data = ir.values_json_schema()
    else:
        try:
            data = ir.ir_json_schema(kind)
        except KeyError:
            raise typer.BadParameter(
                f"unknown kind {kind!r}; one of {', '.join(ir.KINDS)}"
            ) from None
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


def register(app: typer.Typer) -> None:
    """Add validate, render and schema to the root app."""
    app.command()(validate)
    app.command()(render)
    app.command()(schema)
