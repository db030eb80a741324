"""The install task's view of a release that is not ready (`tekton.tasks.unready`, pure parts),
and how a failed task's own reason reaches the job (`tekton.status.task_failure`, the results
`failure-reason`/`failure-message` written by `tekton.cli.write_failure_results`). The I/O path
(watching during helm, cancelling helm) runs on the real control plane in
tests/cluster/test_scenarios.py (a model that cannot load)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tekton.cli import write_failure_results
from tekton.status import Condition, task_failure
from tekton.tasks.unready import describe_unready, model_failure, readiness_url


def service_pod(
    *,
    ready: bool,
    ip: str | None = "10.244.0.7",
    state: dict[str, Any] | None = None,
    restarts: int = 0,
) -> dict[str, Any]:
    """A scoring-service pod as the chart renders it and a kubelet reports it."""
    return {
        "metadata": {
            "name": "j-1-iris-abc",
            "labels": {
                "app.kubernetes.io/component": "scoring-service",
                "tekscore.dev/service": "iris",
                "tekscore.dev/job": "j-1",
            },
        },
        "spec": {
            "containers": [
                {
                    "name": "scoring-service",
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}},
                }
            ]
        },
        "status": {
            "phase": "Running",
            **({"podIP": ip} if ip else {}),
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {
                    "name": "scoring-service",
                    "ready": ready,
                    "restartCount": restarts,
                    "state": state or {"running": {}},
                }
            ],
        },
    }


def test_readiness_url_aims_the_probe_at_the_pod_ip() -> None:
    assert readiness_url(service_pod(ready=False)) == "http://10.244.0.7:8080/v2/health/ready"
    assert readiness_url(service_pod(ready=False, ip=None)) is None


def test_a_model_that_failed_to_load_is_a_failure_and_one_still_loading_is_not() -> None:
    pod = service_pod(ready=False)
    failed = json.dumps(
        {
            "ready": False,
            "error": "not ready",
            "models": {"iris": "cannot unpickle model.joblib: KeyError: 3", "other": "loading"},
        }
    ).encode()
    failure = model_failure(pod, 503, failed)
    assert failure is not None
    assert failure.reason == "ServiceFailed"
    assert failure.message == (
        "Scoring service 'iris' (pod j-1-iris-abc) cannot become ready: model 'iris' failed to "
        "load: cannot unpickle model.joblib: KeyError: 3."
    )
    loading = json.dumps({"ready": False, "models": {"iris": "loading"}}).encode()
    assert model_failure(pod, 503, loading) is None
    assert model_failure(pod, 200, b'{"ready": true}') is None
    assert model_failure(pod, 503, b"<html>proxy error</html>") is None


def test_describe_unready_names_each_pod_and_why() -> None:
    waiting = {
        "waiting": {
            "reason": "CreateContainerConfigError",
            "message": 'secret "s3-creds" not found',
        }
    }
    pods = [
        service_pod(ready=True),
        service_pod(ready=False, restarts=2),
        {**service_pod(ready=False, state=waiting), "metadata": {"name": "j-1-flow-x"}},
    ]
    assert describe_unready(pods) == [
        "pod j-1-flow-x: scoring-service: waiting CreateContainerConfigError: secret "
        '"s3-creds" not found',
        "pod j-1-iris-abc: scoring-service: running, not ready (restarted 2 times)",
    ]


def test_a_failed_taskrun_reads_the_tasks_own_reason_from_its_results() -> None:
    stepfailed = Condition(
        status="False", reason="StepFailed", message='"step-install" exited with code 1: Error'
    )
    results = [
        {"name": "release", "value": ""},
        {"name": "failure-reason", "value": "ServiceFailed"},
        {"name": "failure-message", "value": "model 'iris' failed to load"},
        {"name": "failure-part", "value": "services/iris"},
        {"name": "failure-log", "value": "loading iris\nmodel_load_failed"},
    ]
    found = task_failure(stepfailed, results)
    assert found is not None and found.log_tail == "loading iris\nmodel_load_failed"
    assert (found.status, found.reason, found.message, found.part) == (
        "False",
        "ServiceFailed",
        "model 'iris' failed to load",
        "services/iris",
    )
    assert task_failure(stepfailed, None) == stepfailed
    assert task_failure(stepfailed, [{"name": "release", "value": "j-1"}]) == stepfailed
    running = Condition(status="Unknown", reason="Running")
    assert task_failure(running, results) == running


def test_a_failing_task_writes_its_reason_and_message_as_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESULT_FAILURE_REASON_PATH", str(tmp_path / "reason"))
    monkeypatch.setenv("RESULT_FAILURE_MESSAGE_PATH", str(tmp_path / "message"))
    monkeypatch.setenv("RESULT_FAILURE_PART_PATH", str(tmp_path / "part"))
    monkeypatch.setenv("RESULT_FAILURE_LOG_PATH", str(tmp_path / "log"))
    log = "".join(f"line {i:04d}\n" for i in range(500))  # 5,000 bytes
    write_failure_results("InstallFailed", "x" * 5000, "flows/classify", log)
    tail = (tmp_path / "log").read_text()
    assert len(tail.encode()) <= 1000 and tail.endswith("line 0499\n")
    assert tail.startswith("line ")  # whole lines only
    assert (tmp_path / "reason").read_text() == "InstallFailed"
    assert (tmp_path / "part").read_text() == "flows/classify"
    message = (tmp_path / "message").read_text()
    assert len(message.encode()) <= 2000 and message.endswith("...")
