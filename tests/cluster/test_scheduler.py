"""The scheduler as the platform chart runs it, on the real control plane: two replicas serve the
same jobs (a job started on one is read, cancelled and completed through the other), a
scheduler pod deleted mid-job loses nothing, and the chart's `timeouts.pipeline` ends a job that
outlives it FAILED with Tekton's timeout reason. These change the scheduler Deployment, so they
put it back as it was."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.cluster import JOBS_NS, PLATFORM_NS, RELEASE, ROOT, Cluster, wait_for
from tests.cluster.jobs import (
    Jobs,
    Reasons,
    condition,
    files_body,
    nothing_left,
    taskruns,
)

pytestmark = pytest.mark.timeout(900)
PIPELINES = Path(__file__).with_name("pipelines")
SCHEDULER = "app.kubernetes.io/component=scheduler"


def ready_scheduler_ips(cluster: Cluster) -> list[str]:
    pods = cluster.get("-n", PLATFORM_NS, "pods", "-l", SCHEDULER)["items"]
    return sorted(
        p["status"]["podIP"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions") or []
        )
    )


def scale(cluster: Cluster, replicas: int) -> list[str]:
    cluster.kubectl("-n", PLATFORM_NS, "scale", "deployment", RELEASE, f"--replicas={replicas}")
    ips: list[str] = wait_for(
        f"{replicas} ready scheduler pods",
        lambda: (found := ready_scheduler_ips(cluster)) and len(found) == replicas and found,
        timeout=120,
    )
    return ips


@pytest.fixture
def two_replicas(cluster: Cluster) -> Iterator[list[str]]:
    try:
        yield scale(cluster, 2)
    finally:
        scale(cluster, 1)


def seconds(duration: str) -> float:
    """A Go duration such as `1m30s` in seconds."""
    total, number = 0.0, ""
    for char in duration:
        if char.isdigit() or char == ".":
            number += char
        else:
            total += float(number or 0) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
    return total


def submit(jobs: Jobs, folder: Path, pipeline: str, **parameters: object) -> str:
    if not (folder / pipeline).exists():
        shutil.copy(PIPELINES / pipeline, folder / pipeline)
    body = files_body([folder / "model.yaml", folder / pipeline], parameters=dict(parameters))
    return str(jobs.start(body)["id"])


def test_two_replicas_serve_the_same_jobs(
    cluster: Cluster, iris_copy: Path, two_replicas: list[str]
) -> None:
    first, second = (Jobs(cluster, url=f"http://{ip}:8000") for ip in two_replicas)
    with first, second:
        batch = submit(first, iris_copy, "batch.yaml")
        assert second.get(batch)["id"] == batch  # the other replica finds it at once
        streaming = submit(first, iris_copy, "on-demand.yaml")
        second.wait(streaming, "RUNNING")
        assert second.cancel(streaming).status_code == 202
        assert first.wait(streaming)["state"] == "CANCELLED"
        # the flow's completion callback went through the Service to either replica
        job = second.wait(batch)
        assert job["state"] == "SUCCEEDED", job
        assert job["flows"]["classify"]["records_out"] == 150
        assert first.get(batch) == job
    for job_id in (batch, streaming):
        wait_for(
            "the release to be gone", functools.partial(nothing_left, cluster, job_id), timeout=120
        )


def test_a_scheduler_restarted_mid_job_loses_nothing(
    cluster: Cluster, jobs: Jobs, iris_copy: Path
) -> None:
    job_id = submit(jobs, iris_copy, "batch.yaml")
    jobs.wait_task(job_id, "install")  # the rest of the job happens around the restart
    (old,) = ready_scheduler_ips(cluster)
    cluster.kubectl("-n", PLATFORM_NS, "delete", "pod", "-l", SCHEDULER, "--wait=false")
    wait_for(
        "a new scheduler pod", lambda: ready_scheduler_ips(cluster) not in ([], [old]), timeout=120
    )
    job = jobs.wait(job_id)
    assert job["state"] == "SUCCEEDED", job
    flow = job["flows"]["classify"]
    assert (flow["records_in"], flow["records_out"], flow["records_failed"]) == (150, 150, 0)
    assert len((iris_copy / "output" / "scored.jsonl").read_text().splitlines()) == 150
    wait_for("the release to be gone", lambda: nothing_left(cluster, job_id), timeout=120)


def test_the_pipeline_timeout_fails_a_job_that_outlives_it(
    cluster: Cluster, jobs: Jobs, iris_copy: Path
) -> None:
    chart = str(ROOT / "charts" / "tekscore")
    cluster.helm(
        "upgrade",
        RELEASE,
        chart,
        "-n",
        PLATFORM_NS,
        "--reuse-values",
        "--set",
        "timeouts.pipeline=120",
        "--set",
        "timeouts.finally=90",  # the uninstall pod's start and helm: >30 s at load 15
        "--wait",
    )
    try:
        wait_for(
            "the scheduler to use the timeout",
            lambda: len(ready_scheduler_ips(cluster)) == 1,
            timeout=120,
        )
        job_id = submit(jobs, iris_copy, "on-demand.yaml")  # streaming: never ends by itself
        run = cluster.get("-n", JOBS_NS, "pipelinerun", job_id)
        assert {k: seconds(v) for k, v in run["spec"]["timeouts"].items()} == {
            "pipeline": 120,
            "tasks": 30,
            "finally": 90,
        }
        with Reasons(cluster, job_id) as reasons:
            job = jobs.wait(job_id, timeout=300)
        assert reasons.seen[-1] == ("False", "PipelineRunTimeout"), reasons.seen
        assert job["state"] == "FAILED", job
        assert job["reason"] == "PipelineRunTimeout", job
        trs = taskruns(cluster, job_id)
        assert condition(trs["uninstall"]) == ("True", "Succeeded")
        wait_for("the release to be gone", lambda: nothing_left(cluster, job_id), timeout=120)
    finally:
        cluster.helm(
            "upgrade",
            RELEASE,
            chart,
            "-n",
            PLATFORM_NS,
            "--reuse-values",
            "--set",
            "timeouts.pipeline=0",
            "--wait",
        )
        wait_for("one scheduler again", lambda: len(ready_scheduler_ips(cluster)) == 1, timeout=120)
