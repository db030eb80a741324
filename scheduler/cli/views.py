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


def flows_table(job: dict[str, Any]) -> RenderableType:
    """Each flow's mode, state and counters."""
    rows = [
        (
            name,
            flow["mode"],
            flow["state"],
            str(flow["records_in"]),
            str(flow["records_out"]),
            str(flow["records_failed"]),
            str(flow.get("records_filtered", 0)),
        )
        for name, flow in sorted(job["flows"].items())
    ]
    return table(
        ("flow", "mode", "state", *COUNTERS),
        rows,
        title=f"job {job['id']} ({job['pipeline']})",
        right=COUNTERS,
    )


def job_view(job: dict[str, Any]) -> RenderableType:
    """A job's status: its state line, its message, and its flows."""
    from rich.console import Group
    from rich.text import Text

    parts: list[RenderableType] = [Text.from_markup(job_line(job))]
    if job.get("message"):
        parts.append(Text("  " + job["message"]))
    if job["flows"]:
        parts.append(flows_table(job))
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
