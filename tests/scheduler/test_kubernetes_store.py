"""The pure parts of the Kubernetes job store (`scheduler.stores.kubernetes`): what a change of a
job writes on its PipelineRun, and what it may not write (Tekton's transitions)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler.schemas import BackendInfo, FlowStatus, JobRecord, ServiceStatus
from scheduler.states import State
from scheduler.stores.base import StoreError
from scheduler.stores.kubernetes import annotations_of, flows_doc, idempotent_job_id
from tekton import pipelinerun as pr


def job(state: State = State.RUNNING, **update: object) -> JobRecord:
    record = JobRecord(
        id="j-abcdefghij",
        pipeline="p",
        state=state,
        flows={"f": FlowStatus(mode="batch")},
        services={"s": ServiceStatus(runtime="python", endpoint="http://s:8080")},
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
        content_hash="sha256:0",
        backend=BackendInfo(kind="tekton"),
    )
    return record.model_copy(update=update)


def test_a_report_writes_the_flows_annotation_and_keeps_the_endpoints_recorded_at_start() -> None:
    before = job()
    recorded = flows_doc(before)
    after = before.model_copy(
        update={
            "flows": {"f": FlowStatus(mode="batch", records_in=3)},
            "services": {"s": ServiceStatus(runtime="python")},  # as read while not RUNNING
        }
    )
    written = annotations_of(before, after, recorded=recorded)
    assert set(written) == {pr.ANN_FLOWS}
    assert '"records_in":3' in written[pr.ANN_FLOWS]
    assert '"endpoint":"http://s:8080"' in written[pr.ANN_FLOWS]


def test_nothing_changed_writes_nothing() -> None:
    before = job()
    assert annotations_of(before, before, recorded=flows_doc(before)) == {}


def test_an_outcome_is_written_once_with_its_reason() -> None:
    before = job()
    after = job(State.STOPPING, outcome=State.CANCELLED, reason="Cancelled", message="by request")
    written = annotations_of(before, after, recorded=flows_doc(before))
    assert written[pr.ANN_OUTCOME] == "cancelled"
    assert written[pr.ANN_OUTCOME_REASON] == "Cancelled"
    assert written[pr.ANN_OUTCOME_MESSAGE] == "by request"
    assert pr.ANN_OUTCOME_AT in written


def test_a_transition_that_is_tektons_to_make_is_refused() -> None:
    with pytest.raises(StoreError, match="Tekton's transition"):
        annotations_of(job(State.INSTALLING), job(State.RUNNING), recorded={})


def test_an_idempotency_key_gives_the_same_job_id_on_every_replica() -> None:
    one = idempotent_job_id("key-1", "jobs")
    assert one == idempotent_job_id("key-1", "jobs")
    assert one != idempotent_job_id("key-2", "jobs")
    assert one != idempotent_job_id("key-1", "other")
    assert one.startswith("j-") and len(one) == 12
