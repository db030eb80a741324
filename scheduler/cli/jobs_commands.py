"""`tekscore submit | status | list | cancel | logs | run`: the scheduling server's API on the
command line. Server URL and token from `--server`/`--token` or `TEKSCORE_SERVER`/`TEKSCORE_TOKEN`.

Does HTTP I/O; `run` also starts an embedded server when no `--server` is given.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from scheduler.cli.ir_commands import Params, Paths, parse_params
from scheduler.client import ApiError, Client

FINISHED = {"SUCCEEDED", "FAILED", "CANCELLED"}
DEFAULT_SERVER = "http://127.0.0.1:8000"

Server = Annotated[
    str | None,
    typer.Option("--server", envvar="TEKSCORE_SERVER", help=f"Server URL [{DEFAULT_SERVER}]."),
]
Token = Annotated[str | None, typer.Option("--token", envvar="TEKSCORE_TOKEN", help="API token.")]
JobId = Annotated[str, typer.Argument(help="The job id (j-...).")]
Labels = Annotated[list[str] | None, typer.Option("--label", "-l", help="key=value (repeatable).")]

console = Console()
err = Console(stderr=True)


@contextmanager
def client(server: str | None, token: str | None) -> Iterator[Client]:
    c = Client(server or DEFAULT_SERVER, token=token)
    try:
        yield c
    except ApiError as exc:
        err.print(f"[red]error[/red] {exc}", highlight=False, markup=True)
        raise typer.Exit(1) from None
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


def summary(job: dict[str, Any]) -> Table:
    """A job's status as a table: state, task, reason, and each flow's counts."""
    table = Table(title=f"job {job['id']} ({job['pipeline']})", title_justify="left")
    for column in ("flow", "mode", "state", "in", "out", "failed", "filtered"):
        table.add_column(
            column, justify="right" if column in ("in", "out", "failed", "filtered") else "left"
        )
    for name, flow in sorted(job["flows"].items()):
        table.add_row(
            name,
            flow["mode"],
            flow["state"],
            str(flow["records_in"]),
            str(flow["records_out"]),
            str(flow["records_failed"]),
            str(flow["records_filtered"]),
        )
    return table


def show(job: dict[str, Any]) -> None:
    colour = {"SUCCEEDED": "green", "FAILED": "red", "CANCELLED": "yellow"}.get(
        job["state"], "cyan"
    )
    line = f"[{colour}]{job['state']}[/{colour}]"
    if job.get("task"):
        line += f" task={job['task']}"
    if job.get("reason"):
        line += f" reason={job['reason']}"
    console.print(f"{job['id']}: {line}", highlight=False)
    if job.get("message"):
        console.print(f"  {job['message']}", highlight=False, markup=False)
    if job["flows"]:
        console.print(summary(job))


def follow(c: Client, job_id: str, *, interval: float = 0.25) -> dict[str, Any]:
    """Poll a job until it finishes, with a live line per flow (records and records/s)."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        state_task = progress.add_task("", total=None)
        flow_tasks: dict[str, Any] = {}
        last: dict[str, tuple[float, int]] = {}
        while True:
            job = c.get(job_id)
            stage = job["state"] + (f" ({job['task']})" if job.get("task") else "")
            progress.update(state_task, description=f"job {job_id}: {stage}")
            now = time.monotonic()
            for name, flow in sorted(job["flows"].items()):
                if name not in flow_tasks:
                    flow_tasks[name] = progress.add_task("", total=None)
                seen_at, seen = last.get(name, (now, 0))
                rate = (flow["records_in"] - seen) / (now - seen_at) if now > seen_at else 0.0
                if flow["records_in"] != seen or name not in last:
                    last[name] = (now, flow["records_in"])
                progress.update(
                    flow_tasks[name],
                    description=(
                        f"  flow {name} [{flow['state']}]: {flow['records_in']} in, "
                        f"{flow['records_out']} out, {flow['records_failed']} failed"
                        f"{f', {rate:,.0f} records/s' if rate > 0 else ''}"
                    ),
                )
            if job["state"] in FINISHED:
                return job
            time.sleep(interval)


def submit(
    paths: Paths,
    param: Params = None,
    name: Annotated[str | None, typer.Option(help="A name for the job.")] = None,
    label: Labels = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it ends.")] = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Start a job from IR files; print its id (and, with --wait, follow it)."""
    with client(server, token) as c:
        job = c.start(paths, parameters=parse_params(param), name=name, labels=_labels(label))
        console.print(job["id"], highlight=False)
        if wait:
            job = follow(c, job["id"])
            show(job)
            raise typer.Exit(0 if job["state"] == "SUCCEEDED" else 1)


def status(
    job_id: JobId,
    as_json: Annotated[bool, typer.Option("--json", help="The raw job.")] = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """A job's state, task, reason and flow counts."""
    with client(server, token) as c:
        job = c.get(job_id)
    if as_json:
        console.print_json(json.dumps(job))
    else:
        show(job)


def list_jobs(
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    pipeline: Annotated[str | None, typer.Option(help="Only jobs of this pipeline.")] = None,
    label: Labels = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    server: Server = None,
    token: Token = None,
) -> None:
    """Jobs, newest first."""
    with client(server, token) as c:
        page = c.list(state=state, pipeline=pipeline, label=label or [], limit=limit)
    table = Table()
    for column in ("id", "pipeline", "state", "task", "reason", "created"):
        table.add_column(column)
    for job in page["items"]:
        table.add_row(
            job["id"],
            job["pipeline"],
            job["state"],
            job.get("task") or "",
            job.get("reason") or "",
            job["created_at"],
        )
    console.print(table)


def cancel(job_id: JobId, server: Server = None, token: Token = None) -> None:
    """Cancel a job (its finally task still runs)."""
    with client(server, token) as c:
        job = c.cancel(job_id)
    show(job)


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
    server: Server = None,
    token: Token = None,
    home: Annotated[Path | None, typer.Option(help="State folder of the embedded server.")] = None,
) -> None:
    """Run a job to its end with live progress; exit 1 unless it SUCCEEDED.

    Without --server an embedded scheduling server (local backend) runs it in this process.
    """
    if server is not None:
        with client(server, token) as c:
            raise typer.Exit(_run_with(c, paths, param, name, label))
    from common.logs import configure_logging
    from scheduler.cli.serve import EmbeddedServer, build_settings

    configure_logging("warning")
    settings = build_settings(home=home).model_copy(update={"log_level": "warning"})
    with EmbeddedServer(settings) as embedded, client(embedded.url, None) as c:
        code = _run_with(c, paths, param, name, label)
    raise typer.Exit(code)


def _run_with(
    c: Client, paths: list[Path], param: list[str] | None, name: str | None, label: list[str] | None
) -> int:
    job = c.start(paths, parameters=parse_params(param), name=name, labels=_labels(label))
    try:
        job = follow(c, job["id"])
    except KeyboardInterrupt:
        err.print(f"interrupted: cancelling {job['id']}")
        c.cancel(job["id"])
        while job["state"] not in FINISHED:
            time.sleep(0.2)
            job = c.get(job["id"])
    show(job)
    return 0 if job["state"] == "SUCCEEDED" else 1


def register(app: typer.Typer) -> None:
    """Add the server and client commands to the root app."""
    from scheduler.cli.serve import serve

    app.command()(serve)
    app.command()(submit)
    app.command()(run)
    app.command()(status)
    app.command("list")(list_jobs)
    app.command()(cancel)
    app.command()(logs)
