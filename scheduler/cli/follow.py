"""Following jobs from the CLI: one job to its end (`run`, `submit --wait`), and the job list
as it changes (`list --watch`).

Does HTTP I/O through `scheduler.client.Client` (polling) and prints: live progress goes to
stderr, and only when stderr is a terminal, so stdout keeps only what the command outputs.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from scheduler.cli import output, views
from scheduler.cli.output import Output
from scheduler.client import Client

FINISHED = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


class Rates:
    """Records/s of each flow, from the counters of successive polls."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}
        self._rate: dict[str, float] = {}

    def update(self, name: str, records_in: int, now: float) -> float:
        seen_at, seen = self._last.get(name, (now, records_in))
        if records_in != seen and now > seen_at:
            self._rate[name] = (records_in - seen) / (now - seen_at)
        if records_in != seen or name not in self._last:
            self._last[name] = (now, records_in)
        return self._rate.get(name, 0.0)


def follow(
    c: Client,
    job_id: str,
    *,
    interval: float = 0.25,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll a job until it finishes; on a terminal, a live line per flow (records, records/s)."""
    if not output.is_terminal(sys.stderr):
        job = c.get(job_id)
        while job["state"] not in FINISHED:
            sleep(interval)
            job = c.get(job_id)
        return job
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=output.console(stderr=True), transient=False) as progress:
        state_task = progress.add_task("", total=None)
        flow_tasks: dict[str, Any] = {}
        rates = Rates()
        while True:
            job = c.get(job_id)
            stage = job["state"] + (f" ({job['task']})" if job.get("task") else "")
            progress.update(state_task, description=f"job {job_id}: {stage}")
            now = time.monotonic()
            for name, flow in sorted(job["flows"].items()):
                if name not in flow_tasks:
                    flow_tasks[name] = progress.add_task("", total=None)
                rate = rates.update(name, flow["records_in"], now)
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
            sleep(interval)


def watch_jobs(
    c: Client,
    query: dict[str, Any],
    fmt: Output,
    *,
    interval: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Print the job list, then every change, until interrupted. On a terminal with `table` the
    table is redrawn in place; otherwise each change is one more line (a table row), JSON
    object (JSON Lines) or YAML document, so a script can read the stream as it comes."""
    if fmt is Output.table and output.is_terminal(sys.stdout):
        from rich.live import Live

        with Live(console=output.console(), auto_refresh=False) as live:
            while True:
                live.update(views.jobs_table(c.list(**query)), refresh=True)
                sleep(interval)
    seen: dict[str, str] = {}
    if fmt is Output.table:
        _line([c.upper() for c in views.JOB_COLUMNS])
    first = True
    while True:
        items = c.list(**query)["items"]
        for job in items if first else reversed(items):  # then oldest change first
            key = _key(job, fmt)
            if seen.get(job["id"]) == key:
                continue
            seen[job["id"]] = key
            if fmt is Output.json:
                output.print_json(job, compact=True)
            elif fmt is Output.yaml:
                output.print_yaml(job, document=True)
            else:
                _line(views.job_row(job))
        first = False
        sleep(interval)


def _key(job: dict[str, Any], fmt: Output) -> str:
    """What counts as a change: the row's cells for a table, the whole object otherwise."""
    if fmt is Output.table:
        return "\t".join(views.job_row(job))
    return json.dumps(job, sort_keys=True)


def _line(cells: Sequence[str]) -> None:
    """One line of whitespace-separated cells (`-` for an empty one)."""
    sys.stdout.write(" ".join(cell or "-" for cell in cells) + "\n")
    sys.stdout.flush()
