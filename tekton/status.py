"""A job's status read from its PipelineRun and TaskRuns, with the exact reasons of TEKTON.md.

Pure, no I/O: `job_status(run, taskruns)` maps the objects (as the API returns them) to the
job's state (the strings of `scheduler.states.State`), current task, reason, message, failing
task, times, flow reports and the state history derived from the objects' timestamps.

The `Succeeded` condition of the PipelineRun, and the job state it means:
- none yet, or `Unknown/PipelineRunPending`: PENDING;
- `Unknown` with PipelineRunStopping, CancelledRunningFinally, StoppedRunningFinally,
  PipelineRunTimeoutRunningFinally or PipelineRunCouldntCancel, or an uninstall TaskRun, or an
  outcome recorded by the scheduler: STOPPING (task finally);
- other `Unknown` (Started, Running, ...): by the running child, install INSTALLING, wait
  RUNNING;
- `True` (Succeeded, Completed): SUCCEEDED (FAILED when the recorded outcome is failed);
- `False/Cancelled`: by the outcome annotation, succeeded SUCCEEDED, failed FAILED, else
  CANCELLED;
- `False/Failed`: FAILED, with the task, reason and message of the failed TaskRun (a failed
  finally task wins over a cancel, as in Tekton);
- `False/PipelineRunTimeout`: FAILED, with the task the timeout stopped;
- `False` with any other reason (CreateRunFailed, ParameterMissing, CouldntGetPipeline, ...):
  FAILED with that reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from tekton.pipelinerun import (
    ANN_OUTCOME,
    ANN_OUTCOME_AT,
    ANN_OUTCOME_MESSAGE,
    ANN_OUTCOME_REASON,
    LABEL_MEMBER_OF,
    LABEL_PIPELINE_TASK,
    RESULT_FAILURE_LOG,
    RESULT_FAILURE_MESSAGE,
    RESULT_FAILURE_PART,
    RESULT_FAILURE_REASON,
    TASK_OF_PIPELINE_TASK,
    flows_generations,
)

PENDING, INSTALLING, RUNNING, STOPPING = "PENDING", "INSTALLING", "RUNNING", "STOPPING"
SUCCEEDED, FAILED, CANCELLED = "SUCCEEDED", "FAILED", "CANCELLED"
FINISHED = frozenset({SUCCEEDED, FAILED, CANCELLED})

# Unknown reasons of a PipelineRun whose finally task runs (TEKTON.md).
STOPPING_REASONS = frozenset(
    {
        "PipelineRunStopping",
        "CancelledRunningFinally",
        "StoppedRunningFinally",
        "PipelineRunTimeoutRunningFinally",
        "PipelineRunCouldntCancel",
    }
)
CANCELLED_TASKRUN = "TaskRunCancelled"


@dataclass(frozen=True)
class Condition:
    """A `Succeeded` condition: status True/False/Unknown, reason, message."""

    status: str
    reason: str | None = None
    message: str | None = None
    part: str | None = None  # of a failed task: flows/<name> or services/<name>
    log_tail: str | None = None  # of a failed task: the last lines of that part's log

    @property
    def finished(self) -> bool:
        return self.status in ("True", "False")


@dataclass(frozen=True)
class Child:
    """One TaskRun of the PipelineRun, as far as the job status needs it."""

    name: str
    task: str  # install, wait, finally
    condition: Condition | None
    created: datetime | None
    started: datetime | None
    completed: datetime | None

    @property
    def running(self) -> bool:
        return self.condition is None or not self.condition.finished

    @property
    def succeeded(self) -> bool:
        return self.condition is not None and self.condition.status == "True"

    @property
    def failed(self) -> bool:
        """Failed for a reason other than a cancel."""
        return (
            self.condition is not None
            and self.condition.status == "False"
            and self.condition.reason != CANCELLED_TASKRUN
        )


@dataclass(frozen=True)
class HistoryEntry:
    """One state the job went through, and when."""

    at: datetime
    state: str
    task: str | None = None
    reason: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class RunStatus:
    """The job status of one PipelineRun."""

    state: str
    task: str | None = None
    reason: str | None = None
    message: str | None = None
    failed_task: str | None = None
    failed_part: str | None = None
    failed_log: str | None = None
    outcome: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    flows: dict[str, Any] = field(default_factory=dict)
    history: list[HistoryEntry] = field(default_factory=list)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp of the API (or None)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def succeeded_condition(obj: Mapping[str, Any]) -> Condition | None:
    """The `Succeeded` condition of a PipelineRun or TaskRun."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Succeeded":
            return Condition(
                status=str(cond.get("status", "Unknown")),
                reason=cond.get("reason"),
                message=cond.get("message"),
            )
    return None


def task_failure(condition: Condition | None, results: Any) -> Condition | None:
    """A failed TaskRun's condition with the task's own reason and message, from its results
    `failure-reason` and `failure-message` (written by `tekscore task ...` when it fails). Tekton
    itself only says `StepFailed: "step-install" exited with code 1`, and keeps the results of a
    failed TaskRun (verified on Tekton 3ee1745ae)."""
    if condition is None or condition.status != "False" or not isinstance(results, list):
        return condition
    values = {r.get("name"): r.get("value") for r in results if isinstance(r, dict)}
    reason = values.get(RESULT_FAILURE_REASON)
    if not isinstance(reason, str) or not reason:
        return condition
    message = values.get(RESULT_FAILURE_MESSAGE)
    part = values.get(RESULT_FAILURE_PART)
    tail = values.get(RESULT_FAILURE_LOG)
    return replace(
        condition,
        reason=reason,
        message=message if isinstance(message, str) and message else condition.message,
        part=part if isinstance(part, str) and "/" in part else None,
        log_tail=tail if isinstance(tail, str) and tail else None,
    )


def children(run: Mapping[str, Any], taskruns: Sequence[Mapping[str, Any]]) -> list[Child]:
    """The run's TaskRuns, with their job task from `tekton.dev/pipelineTask` (or the run's
    `childReferences` when a TaskRun has no such label)."""
    by_ref = {
        ref.get("name"): ref.get("pipelineTaskName")
        for ref in (run.get("status") or {}).get("childReferences") or []
    }
    out = []
    for tr in taskruns:
        meta = tr.get("metadata") or {}
        labels = meta.get("labels") or {}
        pipeline_task = labels.get(LABEL_PIPELINE_TASK) or by_ref.get(meta.get("name"))
        task = TASK_OF_PIPELINE_TASK.get(str(pipeline_task))
        if task is None and labels.get(LABEL_MEMBER_OF) == "finally":
            task = "finally"
        if task is None:
            continue
        status = tr.get("status") or {}
        out.append(
            Child(
                name=str(meta.get("name")),
                task=task,
                condition=task_failure(succeeded_condition(tr), status.get("results")),
                created=parse_time(meta.get("creationTimestamp")),
                started=parse_time(status.get("startTime")),
                completed=parse_time(status.get("completionTime")),
            )
        )
    return out


def flows_annotation(run: Mapping[str, Any]) -> dict[str, Any]:
    """The flow reports recorded on the run (`flows_recorded` of its annotations)."""
    return flows_recorded((run.get("metadata") or {}).get("annotations") or {})


def flows_recorded(annotations: Mapping[str, str]) -> dict[str, Any]:
    """The flows' status in a run's annotations: its highest generation
    (`tekton.pipelinerun.flows_key`); empty when absent or unreadable."""
    generations = flows_generations(annotations)
    raw = generations[max(generations)] if generations else None
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _by_task(kids: Sequence[Child]) -> dict[str, Child]:
    """One child per task: the latest created (a retried TaskRun replaces the earlier)."""
    out: dict[str, Child] = {}
    for kid in kids:
        seen = out.get(kid.task)
        if seen is None or (kid.created or _EPOCH) >= (seen.created or _EPOCH):
            out[kid.task] = kid
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ORDER = ("install", "wait", "finally")


def _failure(kids: Mapping[str, Child]) -> Child | None:
    """The TaskRun that failed (not cancelled), DAG tasks first."""
    for task in _ORDER:
        kid = kids.get(task)
        if kid is not None and kid.failed:
            return kid
    return None


def _interrupted(kids: Mapping[str, Child]) -> Child | None:
    """The last DAG TaskRun that did not succeed (what a timeout or cancel stopped)."""
    for task in ("wait", "install"):
        kid = kids.get(task)
        if kid is not None and not kid.succeeded:
            return kid
    return None


def job_status(run: Mapping[str, Any], taskruns: Sequence[Mapping[str, Any]]) -> RunStatus:
    """The job status of `run` and its TaskRuns."""
    meta = run.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    spec = run.get("spec") or {}
    status = run.get("status") or {}
    outcome = annotations.get(ANN_OUTCOME)
    outcome_reason = annotations.get(ANN_OUTCOME_REASON)
    outcome_message = annotations.get(ANN_OUTCOME_MESSAGE)
    cond = succeeded_condition(run)
    kids = _by_task(children(run, taskruns))
    started_at = parse_time(status.get("startTime"))
    finished_at = parse_time(status.get("completionTime"))

    state: str
    task: str | None = None
    reason: str | None = None
    message: str | None = None
    failed_task: str | None = None
    failed_part: str | None = None
    failed_log: str | None = None

    if (
        cond is None
        or cond.reason == "PipelineRunPending"
        or (spec.get("status") == "PipelineRunPending" and not kids)
    ):
        state = STOPPING if outcome else PENDING
        task = "finally" if outcome else None
        if cond is not None:
            reason, message = cond.reason, cond.message
        if outcome:
            reason, message = outcome_reason, outcome_message
    elif cond.status == "Unknown":
        running = {t for t, k in kids.items() if k.running}
        if cond.reason in STOPPING_REASONS or outcome or "finally" in kids:
            state, task = STOPPING, "finally"
            failure = _failure(kids)
            if failure is not None:
                reason, message = _cond_text(failure)
            elif outcome:
                reason, message = outcome_reason, outcome_message
            else:
                reason, message = cond.reason, cond.message
        elif "wait" in running or ("install" in kids and kids["install"].succeeded):
            state, task = RUNNING, "wait"
        elif "install" in kids:
            state, task = INSTALLING, "install"
        else:
            state = PENDING
            reason, message = cond.reason, cond.message
    else:
        failure = _failure(kids)
        if cond.status == "True":
            if outcome == "failed":
                state, reason, message = FAILED, outcome_reason, outcome_message
                failed_task = "wait"
            else:
                state, reason, message = SUCCEEDED, cond.reason or "Succeeded", cond.message
        elif cond.reason == "Failed":
            state = FAILED
            if failure is not None:
                failed_task = failure.task
                failed_part = failure.condition.part if failure.condition else None
                failed_log = failure.condition.log_tail if failure.condition else None
                reason, message = _cond_text(failure)
            else:
                reason, message = cond.reason, cond.message
        elif cond.reason == "Cancelled":
            if outcome == "succeeded":
                state, reason, message = SUCCEEDED, outcome_reason or "Completed", outcome_message
            elif outcome == "failed":
                state, reason, message = FAILED, outcome_reason, outcome_message
                failed_task = "wait"
            else:
                state = CANCELLED
                reason = outcome_reason or "Cancelled"
                message = outcome_message or cond.message
        else:  # PipelineRunTimeout, and every could-not-run reason
            state, reason, message = FAILED, cond.reason, cond.message
            stopped = _interrupted(kids) if cond.reason == "PipelineRunTimeout" else None
            failed_task = stopped.task if stopped is not None else None
        task = failed_task if state == FAILED else None

    history = _history(
        run=run,
        kids=kids,
        state=state,
        task=task,
        reason=reason,
        message=message,
        outcome_at=parse_time(annotations.get(ANN_OUTCOME_AT)),
    )
    return RunStatus(
        state=state,
        task=task,
        reason=reason,
        message=message,
        failed_task=failed_task,
        failed_part=failed_part,
        failed_log=failed_log,
        outcome=outcome,
        started_at=started_at,
        finished_at=finished_at if state in FINISHED else None,
        flows=flows_annotation(run),
        history=history,
    )


def _cond_text(kid: Child) -> tuple[str | None, str | None]:
    if kid.condition is None:
        return None, None
    return kid.condition.reason, kid.condition.message


def _history(
    *,
    run: Mapping[str, Any],
    kids: Mapping[str, Child],
    state: str,
    task: str | None,
    reason: str | None,
    message: str | None,
    outcome_at: datetime | None,
) -> list[HistoryEntry]:
    """The states the job went through up to `state`, timed by the objects' timestamps:
    creation, each TaskRun's start, the first sign of stopping, the run's completion."""
    meta = run.get("metadata") or {}
    status = run.get("status") or {}
    created = parse_time(meta.get("creationTimestamp")) or _EPOCH
    entries = [HistoryEntry(at=created, state=PENDING, reason="Created")]
    if state == PENDING:
        return entries

    def started(kid: Child | None) -> datetime | None:
        return None if kid is None else (kid.started or kid.created)

    install, wait, fin = kids.get("install"), kids.get("wait"), kids.get("finally")
    if started(install) is not None:
        at = started(install) or created
        entries.append(HistoryEntry(at=at, state=INSTALLING, task="install"))
    if state == INSTALLING:
        return _monotonic(entries)
    wait_at = started(wait) or (install.completed if install and install.succeeded else None)
    if wait_at is not None:
        entries.append(HistoryEntry(at=wait_at, state=RUNNING, task="wait"))
    if state == RUNNING:
        return _monotonic(entries)
    stop_candidates = [
        t
        for t in (
            outcome_at,
            parse_time(status.get("finallyStartTime")),
            started(fin),
            *(k.completed for k in (install, wait) if k is not None and not k.succeeded),
        )
        if t is not None
    ]
    if state == STOPPING or (stop_candidates and fin is not None):
        at = min(stop_candidates) if stop_candidates else entries[-1].at
        stop_reason, stop_message = (reason, message) if state == STOPPING else (None, None)
        entries.append(
            HistoryEntry(
                at=at, state=STOPPING, task="finally", reason=stop_reason, message=stop_message
            )
        )
    if state in FINISHED:
        end = parse_time(status.get("completionTime")) or entries[-1].at
        entries.append(HistoryEntry(at=end, state=state, task=task, reason=reason, message=message))
    return _monotonic(entries)


def _monotonic(entries: list[HistoryEntry]) -> list[HistoryEntry]:
    """Entries with times never going backwards (clocks of different writers may differ)."""
    out: list[HistoryEntry] = []
    for entry in entries:
        if out and entry.at < out[-1].at:
            entry = HistoryEntry(
                at=out[-1].at,
                state=entry.state,
                task=entry.task,
                reason=entry.reason,
                message=entry.message,
            )
        out.append(entry)
    return out
