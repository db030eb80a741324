"""The pure parts of the Kubernetes job store (`scheduler.stores.kubernetes`): what a change of a
job writes on its PipelineRun, and what it may not write (Tekton's transitions)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from scheduler.schemas import BackendInfo, FlowStatus, JobRecord, ServiceStatus
from scheduler.states import State
from scheduler.stores.base import StoreError
from scheduler.stores.kubernetes import annotations_of, flows_doc, idempotent_job_id
from tekton import pipelinerun as pr
from tekton.status import flows_recorded


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
    at_start = pr.job_annotations(
        name=None, labels={}, content_hash="", created_at="", body_hash=None, flows=recorded
    )
    written = annotations_of(before, after, annotations=at_start)
    # a new key, the start's removed (Tekton's reconciler can put back a value, not undo a key)
    assert written[pr.ANN_FLOWS] is None
    latest = written[pr.flows_key(1)]
    assert latest is not None and set(written) == {pr.ANN_FLOWS, pr.flows_key(1)}
    assert '"records_in":3' in latest
    assert '"endpoint":"http://s:8080"' in latest


def test_the_highest_generation_is_the_flows_status_and_each_change_removes_the_others() -> None:
    # Tekton put generation 1 back beside 2: 2 is read, and the next change removes both
    annotations = {
        pr.flows_key(1): '{"flows":{"f":{"records_in":1}}}',
        pr.flows_key(2): '{"flows":{"f":{"records_in":2}}}',
        pr.ANN_NAME: "n",
    }
    assert flows_recorded(annotations) == {"flows": {"f": {"records_in": 2}}}
    change = pr.flows_change(annotations, {"flows": {"f": {"records_in": 3}}})
    assert change == {
        pr.flows_key(1): None,
        pr.flows_key(2): None,
        pr.flows_key(3): '{"flows":{"f":{"records_in":3}}}',
    }
    assert flows_recorded({}) == {}
    assert flows_recorded({pr.flows_key(4): "not json"}) == {}


def test_nothing_changed_writes_nothing() -> None:
    before = job()
    annotations = {pr.ANN_FLOWS: json.dumps(flows_doc(before))}
    assert annotations_of(before, before, annotations=annotations) == {}


def test_an_outcome_is_written_once_with_its_reason() -> None:
    before = job()
    after = job(State.STOPPING, outcome=State.CANCELLED, reason="Cancelled", message="by request")
    written = annotations_of(
        before, after, annotations={pr.ANN_FLOWS: json.dumps(flows_doc(before))}
    )
    assert written[pr.ANN_OUTCOME] == "cancelled"
    assert written[pr.ANN_OUTCOME_REASON] == "Cancelled"
    assert written[pr.ANN_OUTCOME_MESSAGE] == "by request"
    assert pr.ANN_OUTCOME_AT in written


def test_a_transition_that_is_tektons_to_make_is_refused() -> None:
    with pytest.raises(StoreError, match="Tekton's transition"):
        annotations_of(job(State.INSTALLING), job(State.RUNNING), annotations={})


def test_an_idempotency_key_gives_the_same_job_id_on_every_replica() -> None:
    one = idempotent_job_id("key-1", "jobs")
    assert one == idempotent_job_id("key-1", "jobs")
    assert one != idempotent_job_id("key-2", "jobs")
    assert one != idempotent_job_id("key-1", "other")
    assert one.startswith("j-") and len(one) == 12
