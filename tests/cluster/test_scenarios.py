"""Jobs that do not simply succeed, on the real control plane: cancel during install and during
wait (a streaming flow that also scores on demand through its Service), a flow that fails, a
model that cannot load, a sharded batch flow (an Indexed Job), reports in quick succession that
Tekton's reconciles must not undo, and a PipelineRun cancelled from outside with `spec.status:
Cancelled` (Tekton skips finally). Each checks what the API says and what Tekton did, through
kubectl and the apiserver's watch."""

from __future__ import annotations

import base64
import itertools
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.cluster import JOBS_NS, Cluster, wait_for
from tests.cluster.jobs import (
    Jobs,
    Reasons,
    Versions,
    condition,
    files_body,
    latest_flows,
    leftovers,
    nothing_left,
    taskruns,
)

pytestmark = pytest.mark.timeout(900)
PIPELINES = Path(__file__).with_name("pipelines")


def start(jobs: Jobs, folder: Path, pipeline: str, *, model: bool = True, **parameters: Any) -> str:
    """Start a job from tests/cluster/pipelines/<pipeline> (plus the iris model) copied into
    the job's folder on the shared filesystem."""
    if not (folder / pipeline).exists():
        shutil.copy(PIPELINES / pipeline, folder / pipeline)
    paths = ([folder / "model.yaml"] if model else []) + [folder / pipeline]
    return str(jobs.start(files_body(paths, parameters=parameters))["id"])


def states(jobs: Jobs, job_id: str) -> list[str]:
    return [e["state"] for e in jobs.events(job_id)]


def test_cancel_during_install_runs_the_uninstall_and_ends_cancelled(
    cluster: Cluster, jobs: Jobs, iris_copy: Path
) -> None:
    job_id = start(jobs, iris_copy, "batch.yaml", model=True)
    with Reasons(cluster, job_id) as reasons:
        jobs.wait_task(job_id, "install")
        response = jobs.cancel(job_id)
        assert response.status_code == 202, response.text
        job = jobs.wait(job_id)
    assert reasons.seen[-2:] == [("Unknown", "CancelledRunningFinally"), ("False", "Cancelled")], (
        reasons.seen
    )
    assert (job["state"], job["reason"]) == ("CANCELLED", "Cancelled"), job
    assert states(jobs, job_id)[-2:] == ["STOPPING", "CANCELLED"]
    trs = taskruns(cluster, job_id)
    assert condition(trs["install"]) == ("False", "TaskRunCancelled")
    assert "wait" not in trs  # never started
    assert condition(trs["uninstall"]) == ("True", "Succeeded")
    run = cluster.get("-n", JOBS_NS, "pipelinerun", job_id)
    assert condition(run) == ("False", "Cancelled")
    assert run["spec"]["status"] == "CancelledRunFinally"
    assert cancel_again(jobs, job_id) == 409
    wait_for("the release to be gone", lambda: nothing_left(cluster, job_id), timeout=90)


def cancel_again(jobs: Jobs, job_id: str) -> int:
    return jobs.cancel(job_id).status_code


def test_streaming_flow_scores_through_its_service_then_cancel_during_wait(
    cluster: Cluster, jobs: Jobs, iris_copy: Path
) -> None:
    job_id = start(jobs, iris_copy, "on-demand.yaml")
    job = jobs.wait(job_id, "RUNNING")
    assert job["task"] == "wait"
    service = cluster.get("-n", JOBS_NS, "service", f"{job_id}-flow-classify-http")
    url = f"http://{service['spec']['clusterIP']}:8090/score"
    record = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}

    def scored() -> dict[str, Any] | None:
        answer = httpx.post(url, json=record, timeout=10, trust_env=False)
        return answer.json() if answer.status_code == 200 else None

    result = wait_for("the flow's Service to score a record", scored, timeout=60)
    assert result["species"] == "virginica"
    assert jobs.get(job_id)["state"] == "RUNNING"  # a streaming job does not end by itself

    # the status names the Services the chart made: the flow's and the scoring service's DNS
    # names (the host cannot resolve them; they are the objects kubectl finds, on their ports)
    job = jobs.get(job_id)
    endpoint = job["flows"]["classify-http"]["endpoint"]
    assert endpoint == f"http://{job_id}-flow-classify-http.{JOBS_NS}.svc:8090/score", job
    [(name, svc)] = job["services"].items()
    host, port = svc["endpoint"].removeprefix("http://").rsplit(":", 1)
    assert host == f"{job_id}-{name}.{JOBS_NS}.svc", svc
    found = cluster.get("-n", JOBS_NS, "service", host.split(".")[0])
    assert [p["port"] for p in found["spec"]["ports"]] == [int(port)]

    # the flow's one replica reports as its pod (TEKSCORE_POD_NAME from the downward API)
    def reported() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = jobs.get(job_id)["flows"]["classify-http"]["replicas"]
        return rows if rows and rows[0]["records_in"] >= 1 else None

    [row] = wait_for("the flow's pod to report the record", reported, timeout=60)
    pods = cluster.get("-n", JOBS_NS, "pods", "-l", "tekscore.dev/flow=classify-http")["items"]
    assert row["pod"] in {p["metadata"]["name"] for p in pods}, row
    assert (row["index"], row["state"]) == (None, "RUNNING")

    assert jobs.cancel(job_id).status_code == 202
    job = jobs.wait(job_id)
    assert (job["state"], job["reason"]) == ("CANCELLED", "Cancelled"), job
    # stopped with the job: the flow and its replica read CANCELLED, no endpoint is listed
    flow = job["flows"]["classify-http"]
    assert (flow["state"], [r["state"] for r in flow["replicas"]]) == ("CANCELLED", ["CANCELLED"])
    assert flow["endpoint"] is None and {s["endpoint"] for s in job["services"].values()} == {None}
    assert states(jobs, job_id) == ["PENDING", "INSTALLING", "RUNNING", "STOPPING", "CANCELLED"]
    trs = taskruns(cluster, job_id)
    assert {task: condition(tr) for task, tr in trs.items()} == {
        "install": ("True", "Succeeded"),
        "wait": ("False", "TaskRunCancelled"),
        "uninstall": ("True", "Succeeded"),
    }
    wait_for("the release to be gone", lambda: nothing_left(cluster, job_id), timeout=120)


def test_a_flow_that_fails_ends_the_job_failed_with_its_reason(
    cluster: Cluster, jobs: Jobs, iris_copy: Path
) -> None:
    job_id = start(jobs, iris_copy, "batch.yaml", input="no-such-file.jsonl")
    job = jobs.wait(job_id)
    assert job["state"] == "FAILED", job
    assert job["reason"] == "FlowFailed"
    assert "no-such-file.jsonl" in job["message"]
    assert job["flows"]["classify"]["state"] == "FAILED"
    assert job["errors"] and "no-such-file.jsonl" in job["errors"][0]["msg"]
    wait_for("the release to be gone", lambda: nothing_left(cluster, job_id), timeout=120)


def test_sharded_batch_flow_each_shard_scores_its_share(
    cluster: Cluster, jobs: Jobs, iris_copy: Path
) -> None:
    job_id = start(jobs, iris_copy, "sharded.yaml")
    job = jobs.wait(job_id)
    assert job["state"] == "SUCCEEDED", job
    flow = job["flows"]["classify"]
    assert (flow["records_in"], flow["records_out"], flow["shards"], flow["shards_done"]) == (
        150,
        150,
        3,
        3,
    )
    # a row per shard (the Indexed Job's completion index), each with its pod, in the API and in
    # the run's annotation (the job's only record)
    rows = flow["replicas"]
    assert [(r["index"], r["state"], r["records_in"], r["records_out"]) for r in rows] == [
        (i, "COMPLETED", 50, 50) for i in range(3)
    ]
    assert all(r["pod"] and r["pod"].startswith(f"{job_id}-flow-classify-") for r in rows), rows
    run = cluster.get("-n", JOBS_NS, "pipelinerun", job_id)
    assert latest_flows(run)["flows"]["classify"]["replicas"] == rows
    wait_for("the release to be gone", lambda: nothing_left(cluster, job_id), timeout=120)


def test_reports_in_quick_succession_are_never_undone_by_tektons_reconciles(
    cluster: Cluster, jobs: Jobs, iris_copy: Path
) -> None:
    """Each report changes the run, and Tekton reconciles it; its reconciler writes back the
    annotation values it read when a reconcile began (tektoncd/pipeline#5297), so a report
    recorded during a reconcile was undone now and then (a shard's completion lost, the job
    waiting for it). 100 reports as a flow replica sends them, one after the other: every
    version of the run counts up, the last is the last sent."""
    job_id = start(jobs, iris_copy, "on-demand.yaml")
    jobs.wait(job_id, "RUNNING")
    secret = cluster.get("-n", JOBS_NS, "secret", f"{job_id}-callback")
    token = base64.b64decode(secret["data"]["token"]).decode()
    url = f"/api/v1/jobs/{job_id}/flows/classify-http/progress"
    last = 100
    with Versions(cluster, job_id) as versions:
        for count in range(1, last + 1):
            body = {"records_in": count, "records_out": count, "records_failed": 0, "pod": "p-0"}
            answer = jobs.http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 202, answer.text
        row = wait_for(
            "the last report in the API",
            lambda: next(
                (
                    r
                    for r in jobs.get(job_id)["flows"]["classify-http"]["replicas"]
                    if r["pod"] == "p-0" and r["records_in"] == last
                ),
                None,
            ),
            timeout=30,
        )
        assert row["records_out"] == last

    def probe(run: dict[str, Any]) -> int:
        rows = latest_flows(run)["flows"]["classify-http"]["replicas"]
        return next((r["records_in"] for r in rows if r["pod"] == "p-0"), 0)

    counts = [probe(run) for run in versions.seen]
    undone = [(a, b) for a, b in itertools.pairwise(counts) if b < a]
    assert not undone, f"reports undone: {undone} in {len(counts)} versions"
    assert counts[-1] == last, counts[-20:]
    assert probe(cluster.get("-n", JOBS_NS, "pipelinerun", job_id)) == last
    assert jobs.cancel(job_id).status_code == 202
    assert jobs.wait(job_id)["state"] == "CANCELLED"


def test_a_model_that_cannot_load_fails_the_install_naming_the_model_error(
    cluster: Cluster, jobs: Jobs, iris_copy: Path
) -> None:
    job_id = start(jobs, iris_copy, "broken-model.yaml", model=False)
    with Reasons(cluster, job_id) as reasons:
        job = jobs.wait(job_id, timeout=300)
    # unlike a cancel, a failed task leaves the run `Unknown/Running` while finally runs
    # (TEKTON.md expected PipelineRunStopping; the real controller wins)
    assert reasons.seen[-1] == ("False", "Failed"), reasons.seen
    assert ("Unknown", "PipelineRunStopping") not in reasons.seen, reasons.seen
    assert job["state"] == "FAILED", job
    assert (job["task"], job["reason"]) == ("install", "ServiceFailed"), job
    assert "model 'broken' failed to load" in job["message"], job["message"]
    assert "context deadline exceeded" not in job["message"]
    # the failing service's own log tail, read by the install task before the uninstall
    [error] = job["errors"]
    assert error["loc"] == ["services", "broken"], error
    assert error["log_tail"] and "broken" in error["log_tail"], error
    assert {f["state"] for f in job["flows"].values()} == {"NOT_STARTED"}, job["flows"]
    trs = taskruns(cluster, job_id)
    assert condition(trs["install"]) == ("False", "StepFailed")  # the task's reason: results
    assert condition(trs["uninstall"]) == ("True", "Succeeded")
    wait_for("the release to be gone", lambda: nothing_left(cluster, job_id), timeout=120)


def test_a_run_cancelled_from_outside_skips_finally_and_leaves_the_release(
    cluster: Cluster, jobs: Jobs, iris_copy: Path
) -> None:
    """What docs/kubernetes.md warns about `spec.status: Cancelled` (tkn pipelinerun cancel)."""
    job_id = start(jobs, iris_copy, "on-demand.yaml")
    jobs.wait(job_id, "RUNNING")
    cluster.kubectl(
        "-n",
        JOBS_NS,
        "patch",
        "pipelinerun",
        job_id,
        "--type=merge",
        "-p",
        '{"spec": {"status": "Cancelled"}}',
    )
    job = jobs.wait(job_id)
    assert job["state"] == "CANCELLED", job
    # Tekton marks the run Cancelled once it has asked its TaskRuns to stop; the TaskRun's own
    # condition follows in its next reconcile (a CI run once read it still Pending)
    wait_for(
        "the wait TaskRun to be cancelled",
        lambda: condition(taskruns(cluster, job_id)["wait"]) == ("False", "TaskRunCancelled"),
        timeout=60,
    )
    assert "uninstall" not in taskruns(cluster, job_id)
    assert condition(cluster.get("-n", JOBS_NS, "pipelinerun", job_id)) == ("False", "Cancelled")
    assert leftovers(cluster, job_id).get("releases") == [job_id]
    cluster.helm("uninstall", job_id, "-n", JOBS_NS, "--wait")  # what the docs tell operators
    cluster.kubectl("-n", JOBS_NS, "delete", "secret", f"{job_id}-callback")
    wait_for("the release to be gone", lambda: nothing_left(cluster, job_id), timeout=120)
