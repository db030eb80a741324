"""The Tekton YAML of tekton/manifests/: the v1 CRD schemas (closed with additionalProperties:
false, shared/schemas/tekton/README.md), @ibm/tekton-lint, and the rules of TEKTON.md and STYLE.md
(named steps, explicit wait timeout, a finally task fed only by params, params through env)."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest

from tests.charts.helpers import MANIFESTS, ROOT, load_manifests, tekton_errors

PIPELINE = "tekscore-scoring-job"
KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PIPELINE_PARAMS = {"job-id", "release", "namespace", "scheduler-url", "chart", "install-timeout"}
TASK_ENV = {
    "install": {
        "PARAM_JOB_ID",
        "PARAM_RELEASE",
        "PARAM_NAMESPACE",
        "PARAM_SCHEDULER_URL",
        "PARAM_CHART",
        "PARAM_TIMEOUT",
        "IR_DIR",
        "RESULT_RELEASE_PATH",
    },
    "wait": {"PARAM_JOB_ID", "PARAM_RELEASE", "PARAM_NAMESPACE", "PARAM_SCHEDULER_URL"},
    "uninstall": {
        "PARAM_JOB_ID",
        "PARAM_RELEASE",
        "PARAM_NAMESPACE",
        "PARAM_SCHEDULER_URL",
        "PARAM_WAIT_STATUS",
        "PARAM_WAIT_REASON",
    },
}


# every task reports its own failure as results (Tekton's condition only names the step)
FAILURE_ENV = {
    "RESULT_FAILURE_REASON_PATH",
    "RESULT_FAILURE_MESSAGE_PATH",
    "RESULT_FAILURE_PART_PATH",
    "RESULT_FAILURE_LOG_PATH",
}


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    found = load_manifests()
    assert found, f"no Tekton YAML in {MANIFESTS}"
    return found


@pytest.fixture(scope="module")
def pipeline(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == "Pipeline"]
    return found


@pytest.fixture(scope="module")
def tasks(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Task"}


def _task_of(
    pipeline: dict[str, Any], tasks: dict[str, dict[str, Any]], name: str
) -> dict[str, Any]:
    (pt,) = [
        t for t in pipeline["spec"]["tasks"] + pipeline["spec"]["finally"] if t["name"] == name
    ]
    return tasks[pt["taskRef"]["name"]]


def test_every_document_matches_the_crd_schema(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        assert tekton_errors(doc) == []


def test_the_closed_schema_catches_typos(pipeline: dict[str, Any], tasks: dict[str, Any]) -> None:
    bad = {**pipeline, "spec": {**pipeline["spec"], "finaly": []}}
    assert any("finaly" in e for e in tekton_errors(bad))
    task = next(iter(tasks.values()))
    steps = [{**task["spec"]["steps"][0], "scirpt": "x"}]
    assert any(
        "scirpt" in e for e in tekton_errors({**task, "spec": {**task["spec"], "steps": steps}})
    )


def test_tekton_lint() -> None:
    lint = shutil.which("tekton-lint")
    if lint is None:
        pytest.skip(
            "tekton-lint is not on PATH: `make tools` installs @ibm/tekton-lint into .tools/node"
        )
    proc = subprocess.run(
        [lint, "tekton/manifests/**/*.yaml"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in proc.stdout, proc.stdout


def test_pipeline_shape(pipeline: dict[str, Any], tasks: dict[str, Any]) -> None:
    assert pipeline["apiVersion"] == "tekton.dev/v1"
    assert pipeline["metadata"]["name"] == PIPELINE
    spec = pipeline["spec"]
    assert {p["name"] for p in spec["params"]} == PIPELINE_PARAMS
    defaults = {p["name"]: p.get("default") for p in spec["params"]}
    assert defaults["chart"] == "/app/charts/scoring-pipeline"
    assert defaults["install-timeout"] == "10m"
    assert [t["name"] for t in spec["tasks"]] == ["install", "wait"]
    assert [t["name"] for t in spec["finally"]] == ["uninstall"]
    install, wait = spec["tasks"]
    assert wait["runAfter"] == ["install"]
    assert install["workspaces"] == [{"name": "ir", "workspace": "ir"}]
    (workspace,) = tasks[install["taskRef"]["name"]]["spec"]["workspaces"]
    assert workspace["readOnly"] is True
    assert "serviceAccountName" not in str(pipeline)


def test_wait_has_an_explicit_timeout(pipeline: dict[str, Any]) -> None:
    (wait,) = [t for t in pipeline["spec"]["tasks"] if t["name"] == "wait"]
    assert "timeout" in wait, "TEKTON.md: put an explicit timeout on the wait PipelineTask"


def test_uninstall_is_fed_by_params_only(pipeline: dict[str, Any]) -> None:
    (uninstall,) = pipeline["spec"]["finally"]
    params = {p["name"]: p["value"] for p in uninstall["params"]}
    assert params["release"] == "$(params.release)"
    assert params["wait-status"] == "$(tasks.wait.status)"
    assert params["wait-reason"] == "$(tasks.wait.reason)"
    for value in params.values():
        assert ".results." not in value, (
            "a finally task reading a result is skipped when that task failed"
        )


def test_task_steps_call_the_tekscore_commands(
    pipeline: dict[str, Any], tasks: dict[str, Any]
) -> None:
    for name, env_names in TASK_ENV.items():
        task = _task_of(pipeline, tasks, name)
        (step,) = task["spec"]["steps"]
        assert step["image"] == "$(params.image)"
        assert {e["name"] for e in step["env"]} == env_names | FAILURE_ENV, name
        assert step["script"].splitlines()[-1] == f"exec tekscore task {name}"
        results = {r["name"] for r in task["spec"]["results"]}
        assert {"failure-reason", "failure-message", "failure-part", "failure-log"} <= results, name
        env = {e["name"]: e["value"] for e in step["env"]}
        assert env["RESULT_FAILURE_REASON_PATH"] == "$(results.failure-reason.path)"
        assert env["RESULT_FAILURE_MESSAGE_PATH"] == "$(results.failure-message.path)"
        assert env["RESULT_FAILURE_PART_PATH"] == "$(results.failure-part.path)"
        assert env["RESULT_FAILURE_LOG_PATH"] == "$(results.failure-log.path)"
    results = _task_of(pipeline, tasks, "install")["spec"]["results"]
    assert [r["name"] for r in results] == [
        "release",
        "failure-reason",
        "failure-message",
        "failure-part",
        "failure-log",
    ]


def test_scripts_take_params_only_through_env(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["kind"] != "Task":
            continue
        for step in doc["spec"]["steps"]:
            assert step.get("name"), f"{doc['metadata']['name']}: unnamed step"
            script = step.get("script", "")
            assert "$(" not in script, f"{doc['metadata']['name']}/{step['name']}: interpolation"
            lines = [line for line in script.splitlines() if line.strip()]
            assert lines[0].startswith("#!") and lines[1] == "set -eu"
            assert len(lines) <= 20
            for env in step.get("env", []):
                assert re.fullmatch(r"[A-Z][A-Z0-9_]*", env["name"])


def test_documented_and_labelled(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        meta, spec = doc["metadata"], doc["spec"]
        name = meta["name"]
        assert meta["labels"]["app.kubernetes.io/version"], name
        assert meta["annotations"]["tekton.dev/pipelines.minVersion"], name
        assert spec["description"].strip(), name
        for section in ("params", "results", "workspaces"):
            for item in spec.get(section, []):
                assert item.get("description", "").strip(), f"{name}: {section} {item['name']}"
                assert KEBAB.match(item["name"]), f"{name}: {item['name']} is not kebab-case"


def test_steps_run_as_non_root(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["kind"] != "Task":
            continue
        template = doc["spec"].get("stepTemplate", {}).get("securityContext", {})
        for step in doc["spec"]["steps"]:
            sc = {**template, **step.get("securityContext", {})}
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
