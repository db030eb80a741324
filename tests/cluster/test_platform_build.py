"""The platform build on the real control plane: the Pipeline `tekscore-platform-build` and its
Tasks, rendered by the platform chart with every scoring server enabled, run by the real Tekton
controller with the test kubelet; kaniko's executor is a stand-in that records what it would
build (`kubelet/kaniko.py`), the pmml image check runs in the tekscore stand-in (Java and JPMML
of this machine). Shows the order (the tekscore image first, then the runtime images on it, the
check after the pmml image), the params each build got, and the digests as results; the
deploy is switched off (`deploy: "false"`), so the session's platform is left as it is."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from datetime import datetime
from typing import Any

import pytest
import yaml

from tests.cluster.cluster import PLATFORM_NS, RELEASE, ROOT, TOOLS, Cluster, wait_for

pytestmark = pytest.mark.timeout(1800)  # the session's control plane starts in the first test

REGISTRY = "registry.test/tekscore"
TAG = "t-1"
ALL_ON = [
    "--set", "global.platformBuild.enabled=true",
    "--set", "scoring-server-pmml.enabled=true",
    "--set", "scoring-server-tensorflow.enabled=true",
]  # fmt: skip


def _build_resources() -> list[dict[str, Any]]:
    rendered = subprocess.run(
        [
            str(TOOLS / "helm"),
            "template",
            RELEASE,
            str(ROOT / "charts" / "tekscore"),
            "-n",
            PLATFORM_NS,
            *ALL_ON,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    return [
        d
        for d in docs
        if d["kind"] in ("Pipeline", "Task")
        and d.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component")
        == "platform-build"
    ]


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_the_build_pipeline_runs_in_dependency_order(cluster: Cluster) -> None:
    resources = _build_resources()
    assert sorted(r["metadata"]["name"] for r in resources) == [
        "tekscore-build-image",
        "tekscore-platform-build",
        "tekscore-platform-deploy",
        "tekscore-pmml-check",
    ]
    listing = {"kind": "List", "apiVersion": "v1", "items": resources}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(listing))
    name = f"build-{uuid.uuid4().hex[:6]}"
    run = {
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "metadata": {"name": name, "namespace": PLATFORM_NS},
        "spec": {
            "pipelineRef": {"name": "tekscore-platform-build"},
            "params": [
                {"name": "registry", "value": REGISTRY},
                {"name": "tag", "value": TAG},
                {"name": "deploy", "value": "false"},
            ],
            "workspaces": [{"name": "source", "emptyDir": {}}],
            "timeouts": {"pipeline": "30m"},
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(run))

    def finished() -> dict[str, Any] | None:
        got = cluster.get("-n", PLATFORM_NS, "pipelinerun", name)
        conditions = got.get("status", {}).get("conditions", [])
        done = conditions and conditions[0]["status"] != "Unknown"
        return got if done else None

    pipelinerun = wait_for("the build PipelineRun to finish", finished, timeout=900, interval=2)
    condition = pipelinerun["status"]["conditions"][0]
    runs = cluster.get("-n", PLATFORM_NS, "taskruns", "-l", f"tekton.dev/pipelineRun={name}")
    by_task = {r["metadata"]["labels"]["tekton.dev/pipelineTask"]: r for r in runs["items"]}
    assert condition["status"] == "True", (condition, {k: v["status"] for k, v in by_task.items()})
    assert sorted(by_task) == [
        "build-tekscore",
        "build-tekscore-pmml",
        "build-tekscore-tensorflow",
        "tekscore-pmml-check",
    ]
    skipped = {s["name"]: s["reason"] for s in pipelinerun["status"].get("skippedTasks", [])}
    assert skipped == {"deploy": "When Expressions evaluated to false"}

    def span(task: str) -> tuple[datetime, datetime]:
        status = by_task[task]["status"]
        return _time(status["startTime"]), _time(status["completionTime"])

    for later in ("build-tekscore-pmml", "build-tekscore-tensorflow"):
        assert span("build-tekscore")[1] <= span(later)[0], later
    assert span("build-tekscore-pmml")[1] <= span("tekscore-pmml-check")[0]

    for task, image, dockerfile, args in [
        ("build-tekscore", "tekscore", "Dockerfile", []),
        ("build-tekscore-pmml", "tekscore-pmml", "docker/pmml.Dockerfile",
         [f"BASE_IMAGE={REGISTRY}/tekscore:{TAG}"]),
        ("build-tekscore-tensorflow", "tekscore-tensorflow", "docker/tensorflow.Dockerfile",
         [f"BASE_IMAGE={REGISTRY}/tekscore:{TAG}"]),
    ]:  # fmt: skip
        status = by_task[task]["status"]
        params = {p["name"]: p["value"] for p in by_task[task]["spec"]["params"]}
        assert params["image"] == f"{REGISTRY}/{image}:{TAG}"
        assert params["dockerfile"] == dockerfile
        facts = {
            "buildArgs": args,
            "context": "/workspace/source/.",
            "destination": f"{REGISTRY}/{image}:{TAG}",
            "dockerfile": f"/workspace/source/{dockerfile}",
        }
        digest = "sha256:" + hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()
        results = {r["name"]: r["value"] for r in status.get("results", [])}
        assert results == {"image-digest": digest}, task
    check = {p["name"]: p["value"] for p in by_task["tekscore-pmml-check"]["spec"]["params"]}
    assert check == {"image": f"{REGISTRY}/tekscore-pmml:{TAG}"}
