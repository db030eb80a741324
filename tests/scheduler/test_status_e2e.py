"""Job status that tells the truth, end to end: a real `tekscore serve` (local backend, real
scoring-service and flow processes) and the real `tekscore` CLI.

- The shipped `examples/iris/streaming.yaml` on the real Kafka-protocol broker (tansu): its
  two-replica flow sums to the records produced, with a row per replica (API and
  `tekscore status --wide`); the HTTP flow's endpoint from the status answers a POST and the
  service's endpoint answers; cancelled, every flow reads CANCELLED and the endpoints are gone.
- An install failure (a model that cannot be found): the flows read NOT_STARTED; the message
  is a sentence naming the service and the cause, the log tail is apart (`errors[].log_tail`,
  no server path) and `tekscore status` shows it only with `--verbose`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.scheduler.conftest import TOKEN, Scheduler
from tests.scoring_flow import kafka_tools
from tests.scoring_flow.conftest import kafka  # noqa: F401 (the tansu broker, a fixture)

TEKSCORE = str(Path(sys.executable).parent / "tekscore")
FINISHED = {"SUCCEEDED", "FAILED", "CANCELLED"}
RECORDS = 1000


def cli(server: Scheduler, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TEKSCORE_SERVER": server.url, "TEKSCORE_TOKEN": TOKEN}
    return subprocess.run(
        [TEKSCORE, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def poll(what: str, probe: Any, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.2)


def measurements(iris: Path, count: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (iris / "input.jsonl").read_text().splitlines()]
    return [{**rows[i % len(rows)], "id": i} for i in range(count)]


def _assigned(logs: list[Path]) -> list[list[int]]:
    """The partitions each replica's latest `kafka partitions assigned` event gives it, sorted."""
    latest: list[list[int]] = []
    for path in logs:
        text = path.read_text() if path.exists() else ""
        events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        assigned = [
            e["partitions"] for e in events if e.get("event") == "kafka partitions assigned"
        ]
        latest.append(assigned[-1] if assigned else [])
    return sorted(latest)


def test_the_streaming_example_sums_its_replicas_and_lists_its_endpoints(
    scheduler: Scheduler,
    iris: Path,
    kafka: str,  # noqa: F811
) -> None:
    asyncio.run(kafka_tools.create_topics(kafka, "iris-measurements", "iris-species", partitions=2))
    job = scheduler.start_job(
        [iris / "model.yaml", iris / "streaming.yaml"], parameters={"brokers": kafka}
    )
    running = scheduler.wait_for(job["id"], {"RUNNING"} | FINISHED)
    assert running["state"] == "RUNNING", running

    # the endpoints the status lists answer: the HTTP flow's POST, the service's readiness
    endpoint = running["flows"]["classify-http"]["endpoint"]
    assert endpoint.startswith("http://127.0.0.1:") and endpoint.endswith("/score")
    assert running["flows"]["classify-stream"]["endpoint"] is None  # a Kafka source: none
    record = measurements(iris, 1)[0]
    answer = poll(
        "the http flow answering",
        lambda: _post(endpoint, record),
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["species"] in {"setosa", "versicolor", "virginica"}
    service = running["services"]["iris-svc"]
    assert service["runtime"] == "python"
    assert httpx.get(f"{service['endpoint']}/v2/health/ready", timeout=10).status_code == 200

    # 1,000 records through two replicas: the flow row is the sum, a row per replica; produced
    # once the group has given each replica its partition (else one replica could read both)
    logs = [
        scheduler.home / "jobs" / job["id"] / "flows" / f"classify-stream-{i}.log" for i in (0, 1)
    ]
    poll("each replica assigned a partition", lambda: _assigned(logs) == [[0], [1]] or None)
    asyncio.run(kafka_tools.produce(kafka, "iris-measurements", measurements(iris, RECORDS)))

    def summed() -> dict[str, Any] | None:
        flow: dict[str, Any] = scheduler.job(job["id"])["flows"]["classify-stream"]
        settled = flow["records_out"] + flow["records_failed"] + flow["records_filtered"]
        # every record read is through (none in flight), by both replicas
        ready = flow["records_in"] >= RECORDS and settled == flow["records_in"]
        return flow if ready and len(flow["replicas"]) == 2 else None

    flow = poll("both replicas reporting every record scored", summed)
    assert flow["records_in"] == RECORDS
    assert flow["records_in"] == (
        flow["records_out"] + flow["records_failed"] + flow["records_filtered"]
    )
    rows = flow["replicas"]
    assert [(r["index"], r["pod"], r["state"]) for r in rows] == [
        (0, None, "RUNNING"),
        (1, None, "RUNNING"),
    ]
    for key in ("records_in", "records_out", "records_failed", "records_filtered"):
        assert sum(r[key] for r in rows) == flow[key], key
    assert all(r["records_in"] > 0 for r in rows), rows  # two partitions: both replicas work

    # the same on the command line: a row per replica with --wide, only the flow without
    plain = cli(scheduler, "status", job["id"])
    wide = cli(scheduler, "status", job["id"], "--wide")
    assert plain.returncode == wide.returncode == 0, plain.stderr + wide.stderr
    lines = {line.split()[0]: line.split() for line in wide.stdout.splitlines() if line.strip()}
    assert "classify-stream[0]" in lines and "classify-stream[1]" in lines
    assert lines["classify-stream"][3] == str(RECORDS)  # FLOW MODE STATE IN ...
    assert endpoint in lines["classify-http"]
    assert service["endpoint"] in lines["iris-svc"]
    assert "classify-stream[0]" not in plain.stdout

    # cancelled: no flow reads RUNNING any more, nothing answers at an endpoint it lists
    assert scheduler.http.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 202
    done = scheduler.wait_for(job["id"], FINISHED)
    assert done["state"] == "CANCELLED"
    assert {name: f["state"] for name, f in done["flows"].items()} == {
        "classify-stream": "CANCELLED",
        "classify-http": "CANCELLED",
    }
    assert {r["state"] for r in done["flows"]["classify-stream"]["replicas"]} == {"CANCELLED"}
    assert done["flows"]["classify-http"]["endpoint"] is None
    assert done["services"]["iris-svc"]["endpoint"] is None
    assert done["flows"]["classify-stream"]["records_in"] >= RECORDS


def _post(url: str, record: dict[str, Any]) -> httpx.Response | None:
    try:
        return httpx.post(url, json=record, timeout=10)
    except httpx.TransportError:
        return None


def test_an_install_failure_leaves_flows_not_started_with_a_message_for_people(
    scheduler: Scheduler, iris: Path
) -> None:
    model = iris / "model.yaml"
    model.write_text(
        model.read_text().replace("file://model.joblib", "file://missing/model.joblib")
    )
    job = scheduler.start_job([model, iris / "batch.yaml"])
    done = scheduler.wait_for(job["id"], FINISHED)
    assert (done["state"], done["task"], done["reason"]) == ("FAILED", "install", "ModelLoadFailed")
    assert {f["state"] for f in done["flows"].values()} == {"NOT_STARTED"}

    message = done["message"]
    assert message.startswith("Scoring service 'iris' could not load its model(s): ")
    assert "missing/model.joblib" in message
    assert "\n" not in message and "Last lines" not in message and "{" not in message
    [error] = done["errors"]
    assert (error["loc"], error["msg"]) == (["services", "iris"], message)
    tail = error["log_tail"]
    assert tail and len(tail.splitlines()) <= 20
    assert any(json.loads(line).get("level") == "error" for line in tail.splitlines())
    assert str(scheduler.home) not in tail and str(iris) not in tail  # no server path

    plain = cli(scheduler, "status", job["id"])
    verbose = cli(scheduler, "status", job["id"], "--verbose")
    assert plain.returncode == verbose.returncode == 0, plain.stderr + verbose.stderr
    assert "NOT_STARTED" in plain.stdout
    assert message in plain.stdout
    assert "last lines of the log" not in plain.stdout
    assert "last lines of the log of services.iris:" in verbose.stdout
    assert tail.splitlines()[-1].strip() in verbose.stdout
