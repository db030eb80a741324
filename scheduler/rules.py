"""The rules of a job, as pure functions: what a transition does to a job, when a job's scoring
is over, what of a flow's error is kept, what is redacted.

Pure, no I/O. The job service (`scheduler.jobs`) applies them through its store's `update`, so
each rule is written once for both backends; `scheduler.states` is the state machine they use,
`scheduler.flowstatus` how a flow's reports add up and how flows and services read in the status.
"""

from __future__ import annotations

import enum
import hashlib
import json
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

import ir
from common.task_errors import Part
from ir.bundle import JobBundle
from scheduler.flowstatus import failure_item, settle
from scheduler.schemas import EventPublic, FlowReport, JobCreate, JobRecord
from scheduler.states import Event, State, advance
from scheduler.stores.base import Write

ERROR_LIMIT = 4096
"""Characters of a flow's error kept (a Kubernetes termination message holds 4096 bytes; an
annotation of the PipelineRun carries it)."""

_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def new_job_id() -> str:
    """`j-` and 10 random base-32 characters: a DNS-1123 label, usable as a release name."""
    return "j-" + "".join(secrets.choice(_ALPHABET) for _ in range(10))


def body_hash(request: JobCreate) -> str:
    """The sha256 of a start request's canonical JSON (to recognise a replayed start)."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def make_bundle(
    request: JobCreate,
    *,
    job_id: str,
    globals_: ir.GlobalValues,
    channels: dict[str, str],
    base_dir: Path,
) -> JobBundle:
    """The pre-processing inputs of a start (or validate) request."""
    return JobBundle(
        job_id=job_id,
        name=request.name,
        labels=request.labels,
        pipeline=request.pipeline,
        parameters=request.parameters,
        base_dir=request.base_dir or str(base_dir),
        channels=channels,
        globals=globals_.model_dump(by_alias=True, exclude_none=True, mode="json"),
    )


# -- transitions -------------------------------------------------------------------------------


def apply_event(
    job: JobRecord,
    event: Event,
    *,
    reason: str | None = None,
    message: str | None = None,
    at: datetime,
    part: Part | None = None,
    log_tail: str | None = None,
) -> Write | None:
    """The job after `event` and the event record of the transition; None when the job stays
    as it is (a cancel while stopping). A failure names its `part` (service or flow) and keeps
    that part's `log_tail` apart. Raises `InvalidTransition` when `event` cannot happen in the
    job's state."""
    step = advance(job.state, event, job.outcome)
    if step.state == job.state and step.outcome == job.outcome:
        return None
    update: dict[str, Any] = {"state": step.state, "task": step.task, "outcome": step.outcome}
    if event in (Event.INSTALL_FAILED, Event.WAIT_FAILED, Event.FINALLY_FAILED):
        update["reason"], update["message"] = reason, message
        where = [f"{part[0]}s", part[1]] if part is not None else None
        update["errors"] = [
            failure_item(
                task=job.task or "finally", message=message or "", part=where, log_tail=log_tail
            )
        ]
        update["failed_task"] = job.task or "finally"
        update["failed_part"] = where
    elif event == Event.CANCEL:
        update["reason"], update["message"] = reason or "Cancelled", message
    elif reason is not None and job.reason is None:
        update["reason"], update["message"] = reason, message
    if step.state == State.INSTALLING:
        update["started_at"] = at
    if step.state.finished:
        update["finished_at"] = at
        update["task"] = job.failed_task if step.state == State.FAILED else None
        if step.state == State.SUCCEEDED:
            update["reason"] = update.get("reason") or job.reason or "Completed"
    after = settle(job.model_copy(update=update))
    record = EventPublic(
        at=at, state=after.state, task=after.task, reason=reason or after.reason, message=message
    )
    return Write(after, record)


# -- how a job's scoring ends ------------------------------------------------------------------


class Completion(enum.StrEnum):
    """What `JobService.complete` (or `fail`) decided for its caller."""

    ENDED = "ended"  # this call ended the job's scoring: the job is STOPPING
    ALREADY_ENDED = "already-ended"  # scoring had ended before (completed, failed or cancelled)
    NOT_YET = "not-yet"  # batch flows still run (or the job is still installing)


def all_batch_done(job: JobRecord) -> bool:
    """Whether the job has batch flows and every one reported its completion (every shard)."""
    batch = [f for f in job.flows.values() if f.mode == "batch"]
    return bool(batch) and all(f.state == "COMPLETED" for f in batch)


def completion(job: JobRecord, *, processes_done: bool, during_install: bool) -> Completion:
    """Whether the job's scoring is over: when every batch flow reported its completion, or
    (`processes_done`, the wait task's own evidence) every batch-flow process exited 0. While
    the job installs it is not, unless the runner's install cannot ask again when it ends
    (`during_install`: Tekton's install runs in a pod)."""
    if job.state == State.PENDING:
        return Completion.NOT_YET
    if job.state == State.INSTALLING and not during_install:
        return Completion.NOT_YET
    if job.state not in (State.INSTALLING, State.RUNNING):
        return Completion.ALREADY_ENDED
    if processes_done or all_batch_done(job):
        return Completion.ENDED
    return Completion.NOT_YET


def failure(job: JobRecord, *, task: str, during_install: bool) -> tuple[Completion, Event | None]:
    """Whether a failure of `task` (install, or wait: a flow or service failing) ends the job
    now, and by which event: the failing task must be the job's current one; a wait-task
    failure while installing waits for the wait task (it fails the job when it sees it), unless
    the runner's install cannot ask again (`during_install`)."""
    if task == "install":
        if job.state == State.INSTALLING:
            return Completion.ENDED, Event.INSTALL_FAILED
        if job.state == State.PENDING:
            return Completion.NOT_YET, None
        return Completion.ALREADY_ENDED, None
    if job.state == State.RUNNING:
        return Completion.ENDED, Event.WAIT_FAILED
    if job.state == State.INSTALLING and during_install:
        return Completion.ENDED, Event.INSTALL_FAILED
    if job.state in (State.PENDING, State.INSTALLING):
        return Completion.NOT_YET, None
    return Completion.ALREADY_ENDED, None


# -- flow reports ------------------------------------------------------------------------------


def clipped(report: FlowReport) -> FlowReport:
    """The report with its error cut to `ERROR_LIMIT` characters."""
    if report.error is None or len(report.error) <= ERROR_LIMIT:
        return report
    return report.model_copy(update={"error": report.error[:ERROR_LIMIT] + "..."})


# -- values ------------------------------------------------------------------------------------

_SECRET_KEYS = ("password", "secret", "token", "apikey", "api_key", "credentials")


def redact(node: Any) -> Any:
    """Values with any string under a secret-looking key masked (values never should hold one;
    `secretRef` objects are references and stay)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            lowered = str(key).lower().replace("-", "_")
            if isinstance(value, str) and any(k in lowered for k in _SECRET_KEYS):
                out[key] = "***"
            else:
                out[key] = redact(value)
        return out
    if isinstance(node, list):
        return [redact(v) for v in node]
    return node
