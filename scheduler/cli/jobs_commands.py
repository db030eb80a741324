"""`tekscore submit | status | list | events | cancel | logs | run`: the scheduling server's API
on the command line. Server URL and token from `--server`/`--token` or
`TEKSCORE_SERVER`/`TEKSCORE_TOKEN`.

Does HTTP I/O; `run` also starts an embedded server when no `--server` is given. Imports stay
light (typer and the stdlib; httpx when a command runs): `tekscore status` never loads FastAPI,
uvicorn or the IR models. Output: `-o table|json|yaml` (`scheduler.cli.output`); exit codes of
`run` and `submit --wait`: 0 succeeded, 1 failed, 3 cancelled; 2 is a usage error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from scheduler.cli.ir_commands import Channels, Params, Paths, parse_params
from scheduler.cli.output import EXIT_FAILED, Output, OutputOpt, emit, error, exit_code
from scheduler.cli.serve import CodeSources, DataRoots

if TYPE_CHECKING:
    from scheduler.client import Client

DEFAULT_SERVER = "http://127.0.0.1:8000"

Server = Annotated[
    str | None,
    typer.Option("--server", envvar="TEKSCORE_SERVER", help=f"Server URL [{DEFAULT_SERVER}]."),
]
Token = Annotated[str | None, typer.Option("--token", envvar="TEKSCORE_TOKEN", help="API token.")]
JobId = Annotated[str, typer.Argument(help="The job id (j-...).")]
Labels = Annotated[list[str] | None, typer.Option("--label", "-l", help="key=value (repeatable).")]
STATES = ("PENDING", "INSTALLING", "RUNNING", "STOPPING", "SUCCEEDED", "FAILED", "CANCELLED")


@contextmanager
def client(server: str | None, token: str | None) -> Iterator[Client]:
    """A client of the server; an API error is printed (each line whole) and exits 1."""
    from scheduler.cli.lean import plain_http_transport
    from scheduler.client import ApiError, Client

    url = server or DEFAULT_SERVER
    # plain http: no CA bundle to load (scheduler/cli/lean.py)
    transport = plain_http_transport() if url.startswith("http://") else None
    c = Client(url, token=token, transport=transport)
    try:
        yield c
    except ApiError as exc:
        if exc.status in (0, 422):
            error(str(exc))  # unreachable, or FILE:LINE: PATH: MESSAGE lines as they are
        else:
            error(f"error {exc.status}: {exc}")
        raise typer.Exit(EXIT_FAILED) from None
    finally:
        c.close()


def _labels(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected key=value, got {item!r}", param_hint="--label")
        out[key] = value
    return out


def _show(job: dict[str, Any], fmt: Output, *, wide: bool = False, verbose: bool = False) -> None:
    from scheduler.cli.views import job_view

    emit(job, fmt, table=lambda j: job_view(j, wide=wide, verbose=verbose))


def submit(
    paths: Paths,
    param: Params = None,
    name: Annotated[str | None, typer.Option(help="A name for the job.")] = None,
    label: Labels = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the job until it ends; exit 0/1/3.")
    ] = False,
    output: OutputOpt = Output.table,
    server: Server = None,
    token: Token = None,
) -> None:
    """Start a job from IR files.

    Prints its id (table) or the job (json, yaml); with --wait, follows it and prints how it
    ended, exiting 0 succeeded, 1 failed, 3 cancelled.
    """
    from scheduler.cli.follow import follow

    with client(server, token) as c:
        job = c.start(paths, parameters=parse_params(param), name=name, labels=_labels(label))
        if output is Output.table:
            typer.echo(job["id"])
        if not wait:
            if output is not Output.table:
                emit(job, output)
            return
        job = follow(c, job["id"])
    _show(job, output)
    raise typer.Exit(exit_code(job["state"]))


def status(
    job_id: JobId,
    output: OutputOpt = Output.table,
    wide: Annotated[
        bool,
        typer.Option(
            "--wide", "-w", help="A row per shard or replica under each flow, and the services."
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="The log tail of the part that failed the job."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", hidden=True, help="Same as -o json.")] = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """A job's state, task, reason, message and flow counts (with their endpoints).

    json/yaml print the API's object, replicas, endpoints and log tails included.
    """
    with client(server, token) as c:
        job = c.get(job_id)
    _show(job, Output.json if as_json else output, wide=wide, verbose=verbose)


def list_jobs(
    state: Annotated[
        str | None, typer.Option(help=f"Only jobs in this state ({', '.join(STATES)}).")
    ] = None,
    pipeline: Annotated[str | None, typer.Option(help="Only jobs of this pipeline.")] = None,
    label: Labels = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Jobs per page.")] = 20,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", "-w", help="Keep going: print every change (Ctrl-C ends it, exit 0)."
        ),
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between polls with --watch.")
    ] = 1.0,
    output: OutputOpt = Output.table,
    server: Server = None,
    token: Token = None,
) -> None:
    """Jobs, newest first.

    json/yaml print the API's page (items, next). With --watch, every change follows: a line
    per job (table), one job per line (json: JSON Lines) or a document per job (yaml).
    """
    from scheduler.cli.views import jobs_table

    query = {"state": state, "pipeline": pipeline, "label": label or [], "limit": limit}
    with client(server, token) as c:
        if watch:
            from scheduler.cli.follow import watch_jobs

            try:
                watch_jobs(c, query, output, interval=interval)
            except KeyboardInterrupt:
                return
        page = c.list(**query)
    emit(page, output, table=jobs_table)


def events(
    job_id: JobId,
    output: OutputOpt = Output.table,
    server: Server = None,
    token: Token = None,
) -> None:
    """A job's state history: each transition, its task and reason."""
    from scheduler.cli.views import events_table

    with client(server, token) as c:
        found = c.events(job_id)
    emit(found, output, table=events_table)


def cancel(
    job_id: JobId,
    output: OutputOpt = Output.table,
    server: Server = None,
    token: Token = None,
) -> None:
    """Cancel a job (its finally task still runs).

    A job that already ended is shown as it ended.
    """
    with client(server, token) as c:
        job = c.cancel(job_id)
    _show(job, output)


def logs(
    job_id: JobId,
    flow: Annotated[str | None, typer.Option(help="Only this flow's log.")] = None,
    service: Annotated[str | None, typer.Option(help="Only this service's log.")] = None,
    tail: Annotated[int, typer.Option(min=1)] = 200,
    server: Server = None,
    token: Token = None,
) -> None:
    """The last lines of a job's flow and service logs."""
    with client(server, token) as c:
        typer.echo(c.logs(job_id, flow=flow, service=service, tail=tail), nl=False)


def run(
    paths: Paths,
    param: Params = None,
    name: Annotated[str | None, typer.Option(help="A name for the job.")] = None,
    label: Labels = None,
    output: OutputOpt = Output.table,
    server: Server = None,
    token: Token = None,
    home: Annotated[Path | None, typer.Option(help="State folder of the embedded server.")] = None,
    channels: Channels = None,
    data_root: DataRoots = None,
    code_source: CodeSources = None,
) -> None:
    """Run a job to its end with live progress.

    Exits 0 succeeded, 1 failed, 3 cancelled. Without --server an embedded scheduling server
    (local backend) runs it in this process, with the channel registry `--channels` (a server
    given by --server has its own). Its jobs may read and write files, and load python models
    and steps, in the folders of the IR given (and in --data-root, --code-source).
    """
    if server is not None:
        with client(server, token) as c:
            job = _run_with(c, paths, param, name, label)
    else:
        from common.logs import configure_logging
        from scheduler.cli.serve import EmbeddedServer, build_settings, embedded_settings

        configure_logging("warning")
        settings = embedded_settings(
            build_settings(
                home=home, channels=channels, data_roots=data_root, code_sources=code_source
            ),
            paths,
        )
        with EmbeddedServer(settings) as embedded, client(embedded.url, None) as c:
            job = _run_with(c, paths, param, name, label)
    _show(job, output)
    raise typer.Exit(exit_code(job["state"]))


def _run_with(
    c: Client, paths: list[Path], param: list[str] | None, name: str | None, label: list[str] | None
) -> dict[str, Any]:
    from scheduler.cli.follow import FINISHED, follow

    job = c.start(paths, parameters=parse_params(param), name=name, labels=_labels(label))
    try:
        return follow(c, job["id"])
    except KeyboardInterrupt:
        error(f"interrupted: cancelling {job['id']}")
        c.cancel(job["id"])
        while job["state"] not in FINISHED:
            time.sleep(0.2)
            job = c.get(job["id"])
        return job


def register(app: typer.Typer) -> None:
    """Add the server and client commands to the root app."""
    from scheduler.cli.serve import serve

    app.command()(serve)
    app.command()(submit)
    app.command()(run)
    app.command()(status)
    app.command("list")(list_jobs)
    app.command()(events)
    app.command()(cancel)
    app.command()(logs)
