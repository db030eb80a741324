"""How a job's flows and services read in its status: the rules both backends apply.

Pure, no I/O.

- `with_report`: one process's report goes into its own replica row (a batch shard by its
  index; a streaming replica by its pod on Kubernetes, else its index); the flow's counters are
  the sums of its rows, so every invariant of one process (`in = out + failed + filtered`)
  holds for the flow. A batch flow is COMPLETED when every shard completed, FAILED when one
  failed.
- `settle`: endpoints are shown only while the job is RUNNING; once the job has finished no flow
  or replica reads RUNNING or PENDING: the part that failed the job is FAILED, a succeeded job's
  flows COMPLETED, a flow never heard from (or that took no record before the job failed in
  install) NOT_STARTED, any other CANCELLED (stopped with the job).
- `failure_item`: the `errors[]` entry of a failure, naming the failing part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from scheduler.schemas import (
    ErrorItem,
    FlowReport,
    FlowState,
    FlowStatus,
    JobRecord,
    ReplicaStatus,
    ServiceStatus,
)
from scheduler.states import State

FINAL: frozenset[FlowState] = frozenset({"COMPLETED", "FAILED", "CANCELLED", "NOT_STARTED"})
COUNTERS = ("records_in", "records_out", "records_failed", "records_filtered")


def _key(mode: str, *, index: int | None, pod: str | None) -> tuple[str, int | str | None]:
    """Who a row is: a batch shard by its index (a retried pod of the same index starts its
    shard over and takes the row); a streaming replica by its pod, else its index."""
    if mode == "batch":
        return "shard", index
    return ("pod", pod) if pod is not None else ("index", index)


def _identity(mode: str, report: FlowReport) -> tuple[int | None, str | None]:
    """(index, pod) of the process that sent a report: a batch shard's index and pod; a
    streaming replica's pod (Kubernetes), else its index (local)."""
    if mode == "batch":
        return report.shard, report.pod
    if report.pod is not None:
        return None, report.pod
    return (report.replica if report.replica is not None else report.shard), None


def _order(row: ReplicaStatus) -> tuple[int, int, str]:
    return (row.index is None, row.index or 0, row.pod or "")


def with_report(job: JobRecord, flow: str, report: FlowReport, *, final: bool) -> JobRecord:
    """The job with one process's report of `flow` in its replica row, and the flow's sums."""
    status = job.flows[flow]
    index, pod = _identity(status.mode, report)
    key = _key(status.mode, index=index, pod=pod)
    rows = list(status.replicas)
    found = next(
        (i for i, r in enumerate(rows) if _key(status.mode, index=r.index, pod=r.pod) == key),
        None,
    )
    old = rows[found] if found is not None else None
    if old is not None and old.state in FINAL and not final:
        return job  # a late progress report: the completion's counters are the last word
    row = ReplicaStatus(
        index=index,
        pod=pod,
        state=("FAILED" if report.error else "COMPLETED") if final else "RUNNING",
        error=report.error if final else None,
        **{k: getattr(report, k) for k in COUNTERS},
    )
    if found is None:
        rows.append(row)
    else:
        rows[found] = row
    rows.sort(key=_order)
    return _with_flow(job, flow, _summed(status, rows, shards=report.shards))


def _summed(status: FlowStatus, rows: Sequence[ReplicaStatus], *, shards: int) -> FlowStatus:
    totals = {k: sum(getattr(r, k) for r in rows) for k in COUNTERS}
    failed = next((r for r in rows if r.state == "FAILED"), None)
    done = sum(1 for r in rows if r.state == "COMPLETED")
    state: FlowState
    if failed is not None or status.state == "FAILED":
        state = "FAILED"
    elif status.mode == "batch" and done >= shards:
        state = "COMPLETED"
    else:
        state = "RUNNING"
    return status.model_copy(
        update={
            **totals,
            "replicas": list(rows),
            "state": state,
            "shards": shards if status.mode == "batch" else status.shards,
            "shards_done": done if status.mode == "batch" else 0,
            "error": failed.error if failed is not None else status.error,
        }
    )


def _with_flow(job: JobRecord, flow: str, status: FlowStatus) -> JobRecord:
    return job.model_copy(update={"flows": {**job.flows, flow: status}})


def settle(job: JobRecord) -> JobRecord:
    """The job as its status reads in its state: endpoints only while RUNNING; in a finished job
    every flow and replica in a final state."""
    flows = dict(job.flows)
    services = dict(job.services)
    if job.state != State.RUNNING:
        flows = {n: f.model_copy(update={"endpoint": None}) for n, f in flows.items()}
        services = {n: s.model_copy(update={"endpoint": None}) for n, s in services.items()}
    if job.state.finished:
        flows = {name: _settled(job, name, flow) for name, flow in flows.items()}
    if flows == job.flows and services == job.services:
        return job
    return job.model_copy(update={"flows": flows, "services": services})


def _settled(job: JobRecord, name: str, flow: FlowStatus) -> FlowStatus:
    state: FlowState
    error = flow.error
    if job.state == State.FAILED and job.failed_part == ["flows", name]:
        state = "FAILED"
        error = error or job.message
    elif flow.state in FINAL:
        state = flow.state
    elif job.state == State.SUCCEEDED:
        state = "COMPLETED"
    elif not flow.replicas or (
        job.failed_task == "install" and all(r.records_in == 0 for r in flow.replicas)
    ):
        # never heard from, or the job failed in install before the flow took a record (its
        # process waited for the services): it never started its work
        state = "NOT_STARTED"
    else:
        state = "CANCELLED"  # stopped with the job
    rows = [r if r.state in FINAL else r.model_copy(update={"state": state}) for r in flow.replicas]
    # a batch flow's shards done are its completed rows, also those settled here (a SUCCEEDED
    # job whose last shard's completion came after the end: Tekton saw its Indexed Job complete)
    done = sum(1 for r in rows if r.state == "COMPLETED") if flow.mode == "batch" else 0
    if (state, rows, error, done) == (flow.state, flow.replicas, flow.error, flow.shards_done):
        return flow
    update = {"state": state, "replicas": rows, "error": error, "shards_done": done}
    return flow.model_copy(update=update)


def with_endpoints(
    job: JobRecord, *, services: Mapping[str, str], flows: Mapping[str, str]
) -> JobRecord:
    """The job with the URLs its services and http-source flows answer at."""
    return job.model_copy(
        update={
            "services": {
                n: s.model_copy(update={"endpoint": services.get(n, s.endpoint)})
                for n, s in job.services.items()
            },
            "flows": {
                n: f.model_copy(update={"endpoint": flows.get(n, f.endpoint)})
                for n, f in job.flows.items()
            },
        }
    )


def services_of(values: Mapping[str, Any]) -> dict[str, ServiceStatus]:
    """The scoring services a job runs (every runtime but external), from its values."""
    return {
        str(s["name"]): ServiceStatus(runtime=str(s.get("runtime") or "python"))
        for s in values.get("scoringServices") or []
        if s.get("runtime") != "external"
    }


def failure_item(
    *, task: str, message: str, part: Sequence[str] | None, log_tail: str | None
) -> ErrorItem:
    """The `errors[]` entry of a failed job: where (the failing service or flow, else the task),
    the message, and the failing part's log tail (shown by `tekscore status --verbose`)."""
    loc: list[str | int] = list(part) if part else ["task", task]
    return ErrorItem(loc=loc, msg=message, log_tail=log_tail)
