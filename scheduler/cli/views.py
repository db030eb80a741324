"""The tables `tekscore` prints for people: a job, a page of jobs, a job's events.

Pure: each function turns the API's object (a dict) into a rich renderable; `output.table`
decides how a table looks on and off a terminal. No I/O; rich is imported when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scheduler.cli.output import table

if TYPE_CHECKING:
    from rich.console import RenderableType

STATE_COLOURS = {"SUCCEEDED": "green", "FAILED": "red", "CANCELLED": "yellow"}
JOB_COLUMNS = ("id", "pipeline", "state", "task", "reason", "created")
COUNTERS = ("in", "out", "failed", "filtered")


def job_line(job: dict[str, Any]) -> str:
    """`ID: STATE task=… reason=…` (rich markup)."""
    colour = STATE_COLOURS.get(job["state"], "cyan")
    line = f"{job['id']}: [{colour}]{job['state']}[/{colour}]"
    if job.get("task"):
        line += f" task={job['task']}"
    if job.get("reason"):
        line += f" reason={job['reason']}"
    return line


def _counts(row: dict[str, Any]) -> tuple[str, ...]:
    return (
        str(row["records_in"]),
        str(row["records_out"]),
        str(row["records_failed"]),
        str(row.get("records_filtered", 0)),
    )


def replica_name(flow: str, replica: dict[str, Any]) -> str:
    """`classify[0]` (a shard or local replica), `classify[<pod>]` (a pod on Kubernetes)."""
    who = replica.get("pod") if replica.get("index") is None else replica["index"]
    return f"{flow}[{who}]"


def flows_table(job: dict[str, Any], *, wide: bool = False) -> RenderableType:
    """Each flow's mode, state and counters (the sums of its processes), and its endpoint when
    it has one; `wide`: a row per shard or replica under each flow."""
    flows = sorted(job["flows"].items())
    endpoints = any(flow.get("endpoint") for _, flow in flows)
    rows = []
    for name, flow in flows:
        rows.append(
            (
                name,
                flow["mode"],
                flow["state"],
                *_counts(flow),
                *((flow.get("endpoint") or "",) if endpoints else ()),
            )
        )
        if wide:
            kind = "shard" if flow["mode"] == "batch" else "replica"
            for replica in flow.get("replicas") or []:
                rows.append(
                    (
                        replica_name(name, replica),
                        kind,
                        replica["state"],
                        *_counts(replica),
                        *(("",) if endpoints else ()),
                    )
                )
    return table(
        ("flow", "mode", "state", *COUNTERS, *(("endpoint",) if endpoints else ())),
        rows,
        title=f"job {job['id']} ({job['pipeline']})",
        right=COUNTERS,
    )


def services_table(job: dict[str, Any]) -> RenderableType:
    """The job's scoring services: runtime and, while the job runs, endpoint."""
    rows = [
        (name, service.get("runtime") or "", service.get("endpoint") or "")
        for name, service in sorted((job.get("services") or {}).items())
    ]
    return table(("service", "runtime", "endpoint"), rows)


def job_view(job: dict[str, Any], *, wide: bool = False, verbose: bool = False) -> RenderableType:
    """A job's status: its state line, its message, and its flows; `wide` adds each flow's
    shards or replicas and the services; `verbose` the log tail of the part that failed."""
    from rich.console import Group
    from rich.text import Text

    parts: list[RenderableType] = [Text.from_markup(job_line(job))]
    if job.get("message"):
        parts.append(Text("  " + job["message"]))
    if verbose:
        for item in job.get("errors") or []:
            if item.get("log_tail"):
                where = ".".join(str(p) for p in item.get("loc") or [])
                parts.append(Text(f"  last lines of the log of {where}:"))
                parts.extend(Text("    " + line) for line in item["log_tail"].splitlines())
    if job["flows"]:
        parts.append(flows_table(job, wide=wide))
    if wide and job.get("services"):
        parts.append(services_table(job))
    return Group(*parts)


def job_row(job: dict[str, Any]) -> tuple[str, ...]:
    """A job's cells in the list: `JOB_COLUMNS`."""
    return (
        job["id"],
        job["pipeline"],
        job["state"],
        job.get("task") or "",
        job.get("reason") or "",
        job["created_at"],
    )


def jobs_table(page: dict[str, Any]) -> RenderableType:
    """A page of jobs (`{"items": [...], "next": ...}`), newest first."""
    return table(JOB_COLUMNS, [job_row(job) for job in page["items"]])


def events_table(events: list[dict[str, Any]]) -> RenderableType:
    """A job's state history, oldest first."""
    rows = [
        (
            e["at"],
            e["state"],
            e.get("task") or "",
            e.get("reason") or "",
            e.get("message") or "",
        )
        for e in events
    ]
    return table(("at", "state", "task", "reason", "message"), rows)
