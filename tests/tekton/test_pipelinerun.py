"""The pure Tekton builders and status mapping: `tekton.pipelinerun` and `tekton.status`.

The built PipelineRun validates against the Tekton v1 CRD schema (closed with
`additionalProperties: false`, tests/charts/helpers.py) and fits the Pipeline of
tekton/manifests/pipeline.yaml (every param without default given, no unknown param, the
workspace names match); the IR ConfigMap holds the bundle and no secret; timeouts follow
TEKTON.md. The status mapping is checked on the reasons TEKTON.md lists that the API tests of
tests/scheduler/test_tekton_backend.py do not reach.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tekton import pipelinerun as pr
from tekton.status import job_status
from tests.charts.helpers import MANIFESTS, tekton_errors

pytestmark = [pytest.mark.timeout(30), pytest.mark.filterwarnings("error")]

TOKEN = "0123456789abcdef-callback-token"


def pipeline() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((MANIFESTS / "pipeline.yaml").read_text(encoding="utf-8"))
    return doc


def build(**overrides: Any) -> dict[str, Any]:
    spec = {
        "job_id": "j-abcdefghij",
        "pipeline": "iris-batch",
        "namespace": "jobs",
        "scheduler_url": "http://tekscore.tekscore.svc:8000",
        "chart": "/app/charts/scoring-pipeline",
        "annotations": pr.job_annotations(
            name="nightly",
            labels={"team": "risk"},
            content_hash="c" * 64,
            created_at="2026-01-01T00:00:00+00:00",
            body_hash="b" * 64,
            flows={"flows": {"classify": {"mode": "batch"}}},
        ),
        "idempotency_key": "key-1",
    } | overrides
    return pr.build_pipelinerun(pr.RunSpec(**spec))


@pytest.mark.parametrize(
    "timeouts",
    [None, pr.timeouts(pipeline=7200, finally_=600), pr.timeouts(pipeline=0, finally_=0)],
)
def test_the_pipelinerun_is_valid_tekton_v1(timeouts: dict[str, str] | None) -> None:
    run = build(timeouts=timeouts)
    assert tekton_errors(run) == []
    assert run["apiVersion"] == "tekton.dev/v1" and run["kind"] == "PipelineRun"
    assert "serviceAccountName" not in run["spec"]
    assert run["spec"]["taskRunTemplate"] == {"serviceAccountName": "tekscore-task"}


def test_the_pipelinerun_fits_the_pipeline() -> None:
    run = build()
    spec = pipeline()["spec"]
    given = [p["name"] for p in run["spec"]["params"]]
    declared = {p["name"]: p for p in spec["params"]}
    assert len(given) == len(set(given))
    assert set(given) <= set(declared), set(given) - set(declared)
    required = {name for name, p in declared.items() if "default" not in p}
    assert required <= set(given), required - set(given)
    assert {w["name"] for w in run["spec"]["workspaces"]} == {w["name"] for w in spec["workspaces"]}
    assert run["spec"]["pipelineRef"] == {"name": pipeline()["metadata"]["name"]}
    params = {p["name"]: p["value"] for p in run["spec"]["params"]}
    assert params["release"] == params["job-id"] == "j-abcdefghij"


def test_labels_and_annotations() -> None:
    run = build()
    labels = run["metadata"]["labels"]
    assert labels[pr.LABEL_JOB] == "j-abcdefghij"
    assert labels[pr.LABEL_PIPELINE] == "iris-batch"
    assert labels[pr.LABEL_MANAGED_BY] == "tekscore"
    assert labels[pr.LABEL_IDEMPOTENCY] == pr.idempotency_label("key-1")
    assert all(len(v) <= 63 for v in labels.values())
    annotations = run["metadata"]["annotations"]
    assert json.loads(annotations[pr.ANN_LABELS]) == {"team": "risk"}
    assert annotations[pr.ANN_NAME] == "nightly"
    assert "key-1" not in json.dumps(run)  # only its hash


def test_timeouts_follow_tekton() -> None:
    assert pr.timeouts(pipeline=0, finally_=600) == {"pipeline": "0", "tasks": "0", "finally": "0"}
    assert pr.timeouts(pipeline=3600, finally_=300) == {
        "pipeline": "1h0m0s",
        "tasks": "55m0s",
        "finally": "5m0s",
    }
    with pytest.raises(ValueError, match="below the pipeline"):
        pr.timeouts(pipeline=60, finally_=60)
    assert pr.go_duration(45) == "45s"


def test_configmap_holds_the_bundle_and_no_secret() -> None:
    bundle = json.dumps({"job_id": "j-abcdefghij", "pipeline": {"kind": "ScoringPipeline"}})
    cm = pr.build_ir_configmap(
        job_id="j-abcdefghij", pipeline="iris-batch", namespace="jobs", bundle_json=bundle
    )
    assert cm["metadata"]["name"] == "j-abcdefghij-ir"
    assert cm["data"] == {"job.json": bundle}
    secret = pr.build_callback_secret(
        job_id="j-abcdefghij", pipeline="iris-batch", namespace="jobs", token=TOKEN
    )
    assert secret["metadata"]["name"] == "j-abcdefghij-callback"
    assert secret["stringData"] == {"token": TOKEN}
    assert TOKEN not in json.dumps(cm) and TOKEN not in json.dumps(build())
    owner = pr.owner_patch(name="j-abcdefghij", uid="u-1")["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "PipelineRun" and owner["uid"] == "u-1"


def test_configmap_keeps_the_values_rendered_at_start_when_both_fit() -> None:
    bundle = json.dumps({"job_id": "j-abcdefghij"})
    values = json.dumps({"scoringFlows": [{"name": "f"}]})
    cm = pr.build_ir_configmap(
        job_id="j-abcdefghij",
        pipeline="iris-batch",
        namespace="jobs",
        bundle_json=bundle,
        values_json=values,
    )
    assert cm["data"] == {"job.json": bundle, "values.json": values}
    big = json.dumps({"blob": "x" * pr.CONFIGMAP_BUDGET})  # the bundle must still fit: no values
    cm = pr.build_ir_configmap(
        job_id="j-abcdefghij",
        pipeline="iris-batch",
        namespace="jobs",
        bundle_json=bundle,
        values_json=big,
    )
    assert cm["data"] == {"job.json": bundle}


def test_patches() -> None:
    assert pr.cancel_patch() == {"spec": {"status": "CancelledRunFinally"}}
    assert pr.cancel_taskrun_patch("done") == {
        "spec": {"status": "TaskRunCancelled", "statusMessage": "done"}
    }
    cancelled = build() | {"spec": build()["spec"] | pr.cancel_patch()["spec"]}
    assert tekton_errors(cancelled) == []


# -- status mapping -------------------------------------------------------------------------------


def run_with(
    status: str | None, reason: str | None = None, message: str = "", **annotations: str
) -> dict[str, Any]:
    run = build()
    run["metadata"]["annotations"].update(annotations)
    run["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    if status is not None:
        run["status"] = {
            "startTime": "2026-01-01T00:00:01Z",
            "conditions": [
                {"type": "Succeeded", "status": status, "reason": reason, "message": message}
            ],
        }
        if status != "Unknown":
            run["status"]["completionTime"] = "2026-01-01T00:01:00Z"
    return run


def taskrun(
    task: str, status: str, reason: str, message: str = "", *, start: str = "00:00:02"
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"j-abcdefghij-{task}-x1",
            "labels": {"tekton.dev/pipelineRun": "j-abcdefghij", "tekton.dev/pipelineTask": task},
        },
        "status": {
            "startTime": f"2026-01-01T{start}Z",
            "conditions": [
                {"type": "Succeeded", "status": status, "reason": reason, "message": message}
            ],
        },
    }


def test_no_status_and_pending_are_pending() -> None:
    assert job_status(run_with(None), []).state == "PENDING"
    assert job_status(run_with("Unknown", "PipelineRunPending"), []).state == "PENDING"


@pytest.mark.parametrize(
    "reason",
    ["CreateRunFailed", "ParameterMissing", "CouldntGetPipeline", "InvalidWorkspaceBindings"],
)
def test_could_not_run_is_failed_with_that_reason(reason: str) -> None:
    status = job_status(run_with("False", reason, "no Pipeline tekscore-scoring-job"), [])
    assert (status.state, status.reason, status.task) == ("FAILED", reason, None)
    assert [h.state for h in status.history] == ["PENDING", "FAILED"]


def test_failed_finally_wins_over_cancel() -> None:
    trs = [
        taskrun("install", "True", "Succeeded"),
        taskrun("wait", "False", "TaskRunCancelled", start="00:00:03"),
        taskrun("uninstall", "False", "Failed", "helm uninstall: timed out", start="00:00:04"),
    ]
    status = job_status(run_with("False", "Failed", outcome="cancelled"), trs)
    assert (status.state, status.task, status.reason) == ("FAILED", "finally", "Failed")
    assert status.message == "helm uninstall: timed out"


def test_a_failed_task_names_the_failing_part_from_its_results() -> None:
    wait = taskrun("wait", "False", "Failed", '"step-wait" exited with code 1', start="00:00:03")
    wait["status"]["results"] = [
        {"name": "failure-reason", "value": "FlowFailed"},
        {
            "name": "failure-message",
            "value": "Flow 'classify': Job j-abcdefghij-flow-classify failed.",
        },
        {"name": "failure-part", "value": "flows/classify"},
    ]
    trs = [taskrun("install", "True", "Succeeded"), wait]
    status = job_status(run_with("False", "Failed"), trs)
    assert (status.state, status.task, status.reason) == ("FAILED", "wait", "FlowFailed")
    assert status.failed_part == "flows/classify"
    wait["status"]["results"] = wait["status"]["results"][:2]  # an older task: no part
    assert job_status(run_with("False", "Failed"), trs).failed_part is None


@pytest.mark.parametrize(
    "reason",
    [
        "PipelineRunStopping",
        "CancelledRunningFinally",
        "StoppedRunningFinally",
        "PipelineRunTimeoutRunningFinally",
    ],
)
def test_finally_running_reasons_are_stopping(reason: str) -> None:
    trs = [
        taskrun("install", "True", "Succeeded"),
        taskrun("uninstall", "Unknown", "Running", start="00:00:05"),
    ]
    status = job_status(run_with("Unknown", reason), trs)
    assert (status.state, status.task) == ("STOPPING", "finally")


def test_wait_ending_by_itself_is_succeeded() -> None:
    trs = [
        taskrun("install", "True", "Succeeded"),
        taskrun("wait", "True", "Succeeded", start="00:00:03"),
        taskrun("uninstall", "True", "Succeeded", start="00:00:04"),
    ]
    status = job_status(run_with("True", "Succeeded"), trs)
    assert status.state == "SUCCEEDED" and status.task is None
    assert [h.state for h in status.history] == [
        "PENDING",
        "INSTALLING",
        "RUNNING",
        "STOPPING",
        "SUCCEEDED",
    ]
    assert [h.at for h in status.history] == sorted(h.at for h in status.history)


def test_cancelled_without_outcome_is_cancelled() -> None:
    status = job_status(run_with("False", "Cancelled", 'PipelineRun "x" was cancelled'), [])
    assert (status.state, status.reason) == ("CANCELLED", "Cancelled")
