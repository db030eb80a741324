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
from tests.cluster.jobs import Jobs, condition, leftovers, nothing_left, taskruns

# the first test of a session also pays for starting the cluster
pytestmark = pytest.mark.timeout(900)


def test_iris_batch_job_succeeds_with_exact_counts_and_leaves_nothing(
    cluster: Cluster, jobs: Jobs, iris_copy: Path
) -> None:
    cli = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "tekscore"),
            "submit",
            str(iris_copy / "model.yaml"),
            str(iris_copy / "batch.yaml"),
            "--label",
            "suite=cluster",
            "--wait",
        ],
        env={
            **os.environ,
            "TEKSCORE_SERVER": cluster.scheduler_url,
            "TEKSCORE_TOKEN": cluster.api_token,
            "NO_PROXY": "*",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    job_id = cli.stdout.split()[0]
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

    wait_for(
        "the release and its objects to be gone", lambda: nothing_left(cluster, job_id), timeout=90
    )
    assert leftovers(cluster, job_id) == {}
