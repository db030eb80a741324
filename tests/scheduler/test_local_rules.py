"""The local backend's job rules with a real `tekscore serve` and real processes: jobs past
`TEKSCORE_MAX_RUNNING_JOBS` wait PENDING and start oldest first as others end, across a restart
of the scheduler; a job larger than the server's process budget is refused; and after an outage
longer than the flows' completion retry window the job's counts are the flow's own final ones,
not the last progress report the scheduler happened to receive."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.scheduler.conftest import Scheduler

JOBS = "/api/v1/jobs"
FINISHED = {"SUCCEEDED", "FAILED", "CANCELLED"}


def streaming(folder: Path, name: str) -> Path:
    """A streaming job of one process (an http source): it runs until cancelled."""
    path = folder / f"{name}.yaml"
    path.write_text(
        f"""\
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {{name: {name}}}
spec:
  dataChannels:
    - {{name: requests, direction: source, type: http}}
    - {{name: nowhere, direction: sink, type: discard}}
  scoringFlows:
    - {{name: serve, mode: streaming, source: requests, sink: nowhere, steps: [{{type: map, rename: {{a: b}}}}]}}
"""
    )
    return path


def states(server: Scheduler, jobs: list[dict[str, Any]]) -> list[str]:
    return [server.job(j["id"])["state"] for j in jobs]


def wait_states(
    server: Scheduler, jobs: list[dict[str, Any]], expected: list[str], timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while (seen := states(server, jobs)) != expected:
        assert time.monotonic() < deadline, f"{seen} != {expected}"
        time.sleep(0.1)


def test_jobs_past_the_limit_wait_pending_and_start_in_order_across_a_restart(tmp_path: Path):
    server = Scheduler(
        tmp_path / "home", data_root=tmp_path, extra_env={"TEKSCORE_MAX_RUNNING_JOBS": "1"}
    )
    server.start()
    try:
        jobs = [server.start_job([streaming(tmp_path, f"s{i}")]) for i in range(4)]
        assert [j["state"] for j in jobs] == ["PENDING"] * 4  # accepted, not refused
        wait_states(server, jobs, ["RUNNING", "PENDING", "PENDING", "PENDING"])
        assert server.job_processes(jobs[1]["id"]) == []  # a queued job runs nothing

        # a queued job cancelled ends at once, and never starts
        server.http.post(f"{JOBS}/{jobs[2]['id']}/cancel")
        wait_states(server, jobs, ["RUNNING", "PENDING", "CANCELLED", "PENDING"])
        assert [e["state"] for e in server.http.get(f"{JOBS}/{jobs[2]['id']}/events").json()] == [
            "PENDING",
            "STOPPING",
            "CANCELLED",
        ]

        server.http.post(f"{JOBS}/{jobs[0]['id']}/cancel")  # room: the oldest waiting starts
        wait_states(server, jobs, ["CANCELLED", "RUNNING", "CANCELLED", "PENDING"])

        server.kill()  # the queue is the store's PENDING jobs: a restart keeps it
        server.start()
        wait_states(server, jobs, ["CANCELLED", "RUNNING", "CANCELLED", "PENDING"])
        server.http.post(f"{JOBS}/{jobs[1]['id']}/cancel")
        wait_states(server, jobs, ["CANCELLED", "CANCELLED", "CANCELLED", "RUNNING"])
        server.http.post(f"{JOBS}/{jobs[3]['id']}/cancel")
        wait_states(server, jobs, ["CANCELLED"] * 4)
        assert all(server.job_processes(j["id"]) == [] for j in jobs)
    finally:
        server.close()


def test_a_job_larger_than_the_servers_process_budget_is_refused(tmp_path: Path):
    server = Scheduler(
        tmp_path / "home", data_root=tmp_path, extra_env={"TEKSCORE_MAX_SERVER_PROCESSES": "2"}
    )
    server.start()
    try:
        path = tmp_path / "p.yaml"
        path.write_text(
            """\
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {name: p}
spec:
  dataChannels:
    - {name: src, direction: source, type: inline, config: {records: [{a: 1}]}}
    - {name: out, direction: sink, type: discard}
  scoringFlows:
    - {name: f, mode: batch, source: src, sink: out, shards: 3, steps: [{type: map, rename: {a: b}}]}
"""
        )
        response = server.http.post(
            JOBS, json={"pipeline": {"files": {str(path): path.read_text()}}}
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [
            {
                "loc": [],
                "msg": "processes the server runs at once for all its jobs: 3, more than the "
                "limit of 2 (setting TEKSCORE_MAX_SERVER_PROCESSES)",
                "file": "<job>",
            }
        ]
    finally:
        server.close()


SLOW = "import time\n\ndef transform(records):\n    time.sleep(0.05)\n    return records\n"


def test_after_an_outage_longer_than_the_completion_retries_counts_come_from_the_flow(
    tmp_path: Path,
):
    """Issue 12: the job ended SUCCEEDED with the counts of its last progress report (35,904 of
    200,000). The flow gives up reporting its completion after its retry window, but leaves its
    final counters in its termination record; the restarted scheduler takes them from there."""
    server = Scheduler(
        tmp_path / "home",
        data_root=tmp_path,
        extra_env={
            "TEKSCORE_PROGRESS_INTERVAL": "0.2",
            "TEKSCORE_COMPLETION_RETRY_SECONDS": "1",
        },
    )
    server.start()
    try:
        (tmp_path / "slow.py").write_text(SLOW)
        records = 80
        rows = ", ".join(f"{{id: {i}}}" for i in range(records))
        path = tmp_path / "p.yaml"
        path.write_text(
            f"""\
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {{name: counted}}
spec:
  dataChannels:
    - {{name: src, direction: source, type: inline, config: {{records: [{rows}]}}}}
    - {{name: out, direction: sink, type: file, config: {{path: out.jsonl}}}}
  scoringFlows:
    - {{name: f, mode: batch, source: src, sink: out, batchSize: 1, concurrency: 1, steps: [{{type: python, uri: file://slow.py}}]}}
"""
        )
        job = server.start_job([path])
        deadline = time.monotonic() + 120
        while not 0 < (seen := server.job(job["id"]))["flows"]["f"]["records_in"] < records:
            assert seen["state"] not in FINISHED and time.monotonic() < deadline, seen
            time.sleep(0.05)
        server.kill()
        stale = seen["flows"]["f"]["records_in"]

        deadline = time.monotonic() + 120
        while server.job_processes(job["id"]):  # the flow ends alone: its completion is lost
            assert time.monotonic() < deadline, "the flow did not end"
            time.sleep(0.1)
        record = server.home / "jobs" / job["id"] / "flows" / "f.termination.json"
        final = json.loads(record.read_text())
        assert final["reason"] == "Completed"
        assert final["records_in"] == records
        log = (server.home / "jobs" / job["id"] / "flows" / "f.log").read_text()
        assert "completion report failed" in log  # it gave up: the retry window is over

        server.start()
        done = server.wait_for(job["id"], FINISHED)
        assert done["state"] == "SUCCEEDED", done
        counts = done["flows"]["f"]
        assert (counts["records_in"], counts["records_out"]) == (records, records), stale
        assert len((tmp_path / "out.jsonl").read_text().splitlines()) == records
    finally:
        server.close()
