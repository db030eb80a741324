"""The whole job on a real control plane: `tekscore submit` to the scheduler running as the
platform chart's pod, the real Tekton controller runs install (helm through pyhelm3 against the
real apiserver, under the task ServiceAccount), the scoring service and the flow run as pods of
the test kubelet and score the 150 iris records, the flow's completion callback makes the
scheduler cancel the wait TaskRun, the finally task uninstalls, and the job reads SUCCEEDED with
exact counts and nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.cluster.cluster import JOBS_NS, ROOT, Cluster, wait_for
from tests.cluster.jobs import Jobs, Reasons, condition, leftovers, nothing_left, taskruns

# the first test of a session also pays for starting the cluster
pytestmark = pytest.mark.timeout(900)


def test_iris_batch_job_succeeds_with_exact_counts_and_leaves_nothing(
    cluster: Cluster, jobs: Jobs, iris_copy: Path
) -> None:
    env = {
        **os.environ,
        "TEKSCORE_SERVER": cluster.scheduler_url,
        "TEKSCORE_TOKEN": cluster.api_token,
        "NO_PROXY": "*",
    }
    tekscore = str(ROOT / ".venv" / "bin" / "tekscore")
    submitted = subprocess.run(
        [
            tekscore,
            "submit",
            str(iris_copy / "model.yaml"),
            str(iris_copy / "batch.yaml"),
            "--label",
            "suite=cluster",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job_id = submitted.stdout.split()[0]
    with Reasons(cluster, job_id) as reasons:
        jobs.wait(job_id, "SUCCEEDED")
    shown = subprocess.run(
        [tekscore, "status", job_id, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert json.loads(shown.stdout)["state"] == "SUCCEEDED"
    # Tekton's own sequence when the scheduler cancels the wait TaskRun on completion
    assert reasons.seen[-2:] == [("Unknown", "PipelineRunStopping"), ("False", "Cancelled")], (
        reasons.seen
    )
    job = jobs.get(job_id)
    assert job["state"] == "SUCCEEDED", job
    assert job["reason"] == "Completed"
    assert job["labels"] == {"suite": "cluster"}
    flow = job["flows"]["classify"]
    assert (flow["state"], flow["records_in"], flow["records_out"], flow["records_failed"]) == (
        "COMPLETED",
        150,
        150,
        0,
    )
    assert job["backend"] == {
        "kind": "tekton",
        "namespace": JOBS_NS,
        "pipelinerun": job_id,
        "release": job_id,
    }

    scored = [
        json.loads(line)
        for line in (iris_copy / "output" / "scored.jsonl").read_text().splitlines()
    ]
    inputs = [json.loads(line) for line in (iris_copy / "input.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in scored) == sorted(r["id"] for r in inputs)
    assert {r["species"] for r in scored} == {"setosa", "versicolor", "virginica"}
    assert (iris_copy / "output" / "rejected.jsonl").read_text() == ""

    states = [e["state"] for e in jobs.events(job_id)]
    assert states == ["PENDING", "INSTALLING", "RUNNING", "STOPPING", "SUCCEEDED"]

    # what Tekton did: install succeeded, wait was cancelled by the scheduler on completion,
    # the finally task ran; the run ends Cancelled and the outcome annotation says succeeded
    run = cluster.get("-n", JOBS_NS, "pipelinerun", job_id)
    assert condition(run) == ("False", "Cancelled")
    assert run["metadata"]["annotations"]["tekscore.dev/outcome"] == "succeeded"
    trs = taskruns(cluster, job_id)
    assert {task: condition(tr) for task, tr in trs.items()} == {
        "install": ("True", "Succeeded"),
        "wait": ("False", "TaskRunCancelled"),
        "uninstall": ("True", "Succeeded"),
    }
    assert trs["install"]["status"]["results"] == [
        {"name": "release", "type": "string", "value": job_id}
    ]

    # the operator's view, as docs/kubernetes.md shows it
    listed = cluster.kubectl(
        "-n", JOBS_NS, "get", "pipelineruns", "-l", f"tekscore.dev/job={job_id}"
    ).stdout.splitlines()
    assert listed[0].split() == ["NAME", "SUCCEEDED", "REASON", "STARTTIME", "COMPLETIONTIME"]
    assert listed[1].split()[:3] == [job_id, "False", "Cancelled"]
    by_pipeline = cluster.kubectl(
        "-n",
        JOBS_NS,
        "get",
        "pipelineruns",
        "-o",
        "name",
        "-l",
        "app.kubernetes.io/managed-by=tekscore,tekscore.dev/pipeline=iris-batch",
    ).stdout.split()
    assert f"pipelinerun.tekton.dev/{job_id}" in by_pipeline
    rows = cluster.kubectl(
        "-n", JOBS_NS, "get", "taskruns", "-l", f"tekton.dev/pipelineRun={job_id}"
    ).stdout.splitlines()[1:]
    assert sorted(r.split()[1:3] for r in rows) == [
        ["False", "TaskRunCancelled"],
        ["True", "Succeeded"],
        ["True", "Succeeded"],
    ]
    install_log = cluster.kubectl(
        "-n", JOBS_NS, "logs", f"{job_id}-install-pod", "-c", "step-install"
    ).stdout
    assert '"event": "release installed"' in install_log

    wait_for(
        "the release and its objects to be gone", lambda: nothing_left(cluster, job_id), timeout=90
    )
    assert leftovers(cluster, job_id) == {}
