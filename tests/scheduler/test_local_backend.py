"""The local backend through a real server and real processes: the iris batch job end to end
(exact counts, output equal to the model's predictions, no process left); cancelling a
streaming job runs its finally task and leaves no process; a model that cannot be downloaded fails the job with the
download error; a scheduler killed with SIGKILL mid-job and restarted still knows the job and
ends it correctly (re-attached, or failed with reason scheduler-restarted)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import joblib
import psutil
import pytest

from tests.autogroups import autogroup_nice
from tests.scheduler.conftest import Scheduler, http_streaming_ir

FINISHED = {"SUCCEEDED", "FAILED", "CANCELLED"}
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def test_the_iris_batch_job_succeeds_with_exact_counts_and_correct_output(
    scheduler: Scheduler, iris: Path
):
    job = scheduler.start_job(
        [iris / "model.yaml", iris / "batch.yaml"], parameters={"batchSize": 32}
    )
    assert job["state"] in ("PENDING", "INSTALLING")
    assert job["backend"] == {
        "kind": "local",
        "namespace": None,
        "pipelinerun": None,
        "release": job["id"],
    }
    done = scheduler.wait_for(job["id"], {"SUCCEEDED", "FAILED", "CANCELLED"})
    assert done["state"] == "SUCCEEDED", done
    assert done["task"] is None
    assert done["flows"]["classify"] == {
        "mode": "batch",
        "state": "COMPLETED",
        "records_in": 150,
        "records_out": 150,
        "records_failed": 0,
        "records_filtered": 0,
        "shards": 1,
        "shards_done": 1,
        "error": None,
        "endpoint": None,
        "replicas": [
            {
                "index": 0,
                "pod": None,
                "state": "COMPLETED",
                "records_in": 150,
                "records_out": 150,
                "records_failed": 0,
                "records_filtered": 0,
                "error": None,
            }
        ],
    }
    records = [
        json.loads(line) for line in (iris / "output" / "scored.jsonl").read_text().splitlines()
    ]
    inputs = [json.loads(line) for line in (iris / "input.jsonl").read_text().splitlines()]
    model = joblib.load(iris / "model.joblib")
    expected = model.predict([[r[f] for f in FEATURES] for r in inputs])
    assert [r["id"] for r in records] == [r["id"] for r in inputs]
    assert [r["species"] for r in records] == list(expected)
    states = [e["state"] for e in scheduler.http.get(f"/api/v1/jobs/{job['id']}/events").json()]
    assert states == ["PENDING", "INSTALLING", "RUNNING", "STOPPING", "SUCCEEDED"]
    assert scheduler.job_processes(job["id"]) == []


def _http_port(scheduler: Scheduler, job_id: str) -> int:
    config = json.loads((scheduler.home / "jobs" / job_id / "flows" / "on-demand.json").read_text())
    return int(config["source"]["config"]["port"])


def test_a_cancelled_streaming_job_runs_finally_and_leaves_no_process(
    scheduler: Scheduler, iris: Path
):
    job = scheduler.start_job([iris / "model.yaml", http_streaming_ir(iris)])
    running = scheduler.wait_for(job["id"], {"RUNNING"} | FINISHED)
    assert running["state"] == "RUNNING"
    port = _http_port(scheduler, job["id"])
    deadline = time.monotonic() + 30
    while True:
        try:
            answer = httpx.post(
                f"http://127.0.0.1:{port}/score",
                json={
                    "sepal_length": 5.1,
                    "sepal_width": 3.5,
                    "petal_length": 1.4,
                    "petal_width": 0.2,
                },
            )
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the http flow never answered"
            time.sleep(0.1)
    assert answer.status_code == 200, answer.text
    assert scheduler.job_processes(job["id"]), "the job's processes should be running"
    cancelled = scheduler.http.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.json()["state"] in ("STOPPING", "CANCELLED")
    assert scheduler.http.post(f"/api/v1/jobs/{job['id']}/cancel").status_code in (
        202,
        409,
    )  # idempotent
    done = scheduler.wait_for(job["id"], FINISHED)
    assert done["state"] == "CANCELLED"
    assert scheduler.job_processes(job["id"]) == []
    events = scheduler.http.get(f"/api/v1/jobs/{job['id']}/events").json()
    assert [e["state"] for e in events][-2:] == ["STOPPING", "CANCELLED"]
    assert events[-2]["task"] == "finally"


@pytest.mark.parametrize("job_nice", [None, "0"], ids=["default", "TEKSCORE_JOB_NICE=0"])
def test_a_jobs_processes_and_the_warm_spares_run_below_the_servers_cpu_priority(
    tmp_path: Path, iris: Path, job_nice: str | None
):
    """What `ps -o ni` and `/proc/<pid>/autogroup` show an operator: every process of a running
    job (its service, its flow, their sandbox) and every warm spare at nice 10, in their
    sessions' autogroups too, the server at its own priority; `TEKSCORE_JOB_NICE=0` leaves
    them at the server's."""
    env = {} if job_nice is None else {"TEKSCORE_JOB_NICE": job_nice}
    scheduler = Scheduler(tmp_path / "home", data_root=tmp_path, extra_env=env)
    scheduler.start()
    try:
        job = scheduler.start_job([iris / "model.yaml", http_streaming_ir(iris)])
        assert scheduler.wait_for(job["id"], {"RUNNING"} | FINISHED)["state"] == "RUNNING"
        assert scheduler.proc is not None
        server = psutil.Process(scheduler.proc.pid)
        spares = [p for p in server.children() if "local_runner.spare" in " ".join(p.cmdline())]
        processes = scheduler.job_processes(job["id"])
        assert processes and spares, (processes, spares)
        want = 10 if job_nice is None else 0
        deadline = time.monotonic() + 10  # autogroup changes: one per 100 ms per user
        while True:  # (nice value, autogroup's) of each; no autogroups on the kernel: None
            seen = {p.pid: (p.nice(), autogroup_nice(p.pid)) for p in [*processes, *spares]}
            if set(seen.values()) <= {(want, want), (want, None)}:
                break
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)
        assert server.nice() == 0
    finally:
        scheduler.close()


def test_a_model_that_cannot_be_downloaded_fails_the_job_with_the_error(
    scheduler: Scheduler, iris: Path
):
    model = iris / "model.yaml"
    model.write_text(
        model.read_text().replace("file://model.joblib", "file://missing/model.joblib")
    )
    job = scheduler.start_job([model, iris / "batch.yaml"])
    done = scheduler.wait_for(job["id"], FINISHED)
    assert done["state"] == "FAILED"
    assert done["task"] == "install"
    assert done["reason"] == "ModelLoadFailed"
    assert "missing/model.joblib" in done["message"]
    assert done["errors"][0]["msg"] == done["message"]
    assert scheduler.job_processes(job["id"]) == []
    logs = scheduler.http.get(f"/api/v1/jobs/{job['id']}/logs", params={"service": "iris"})
    assert logs.status_code == 200
    assert "missing/model.joblib" in logs.text


def test_a_failing_flow_fails_the_job_with_its_reason(scheduler: Scheduler, iris: Path):
    batch = iris / "batch.yaml"
    batch.write_text(
        batch.read_text().replace("default: input.jsonl", "default: no-such-input.jsonl")
    )
    job = scheduler.start_job([iris / "model.yaml", batch])
    done = scheduler.wait_for(job["id"], FINISHED)
    assert done["state"] == "FAILED", done
    assert done["task"] == "wait"
    assert done["reason"] == "FlowFailed"
    assert "no-such-input.jsonl" in done["message"]


def _slow_batch_ir(folder: Path, records: int = 120) -> list[Path]:
    """A batch flow slow enough to outlive a scheduler restart: a python step sleeping per batch."""
    (folder / "slow.py").write_text(
        "import time\n\ndef transform(records):\n    time.sleep(0.25)\n    return records\n"
    )
    rows = ",".join(
        f'{{"id": {i}, "sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}}'
        for i in range(records)
    )
    path = folder / "slow.yaml"
    path.write_text(
        f"""\
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {{name: slow}}
spec:
  models: [iris]
  dataChannels:
    - {{name: rows, direction: source, type: inline, config: {{records: [{rows}]}}}}
    - {{name: out, direction: sink, type: file, config: {{path: output/slow.jsonl}}}}
  scoringFlows:
    - name: slow
      source: rows
      sink: out
      batchSize: 5
      concurrency: 1
      steps:
        - {{type: python, uri: file://slow.py}}
        - {{type: score, model: iris}}
"""
    )
    return [folder / "model.yaml", path]


def test_a_job_survives_a_scheduler_killed_and_restarted(scheduler: Scheduler, iris: Path):
    job = scheduler.start_job(_slow_batch_ir(iris))
    scheduler.wait_for(job["id"], {"RUNNING"})
    processes = scheduler.job_processes(job["id"])
    assert processes
    scheduler.kill()
    assert all(p.is_running() for p in processes), "job processes must outlive the scheduler"
    scheduler.start()
    after = scheduler.job(job["id"])
    assert after["state"] == "RUNNING"
    done = scheduler.wait_for(job["id"], FINISHED, timeout=120)
    assert done["state"] == "SUCCEEDED", done
    assert done["flows"]["slow"]["records_out"] == 120
    lines = (iris / "output" / "slow.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == list(range(120))
    assert scheduler.job_processes(job["id"]) == []


def test_a_job_whose_processes_died_with_the_scheduler_fails_with_scheduler_restarted(
    scheduler: Scheduler, iris: Path
):
    job = scheduler.start_job(_slow_batch_ir(iris))
    scheduler.wait_for(job["id"], {"RUNNING"})
    processes = scheduler.job_processes(job["id"])
    scheduler.kill()
    for proc in processes:
        os.kill(proc.pid, signal.SIGKILL)
    scheduler.start()
    done = scheduler.wait_for(job["id"], FINISHED, timeout=60)
    assert done["state"] == "FAILED"
    assert done["reason"] == "scheduler-restarted"
    assert scheduler.job_processes(job["id"]) == []
