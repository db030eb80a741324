"""A streaming flow with an http source (`POST /score`) against the real iris service: single
and list requests answered with their scores (failures as `$error`), `/metrics` and `/healthz`
on `--metrics-port`, and SIGTERM while a request is in flight: the request is still answered,
the file sink is closed with every scored record, and the process exits 0."""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path
from typing import Any

import httpx

from common.ports import free_port
from tests.scoring_flow.conftest import (
    SCORE_STEP,
    FlowLauncher,
    ServeModel,
    assert_invariant,
    iris_services,
    read_jsonl,
    wait_until,
)

SETOSA = {"id": 1, "sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{name}\{{flow=\"online\"\}} (\S+)$", text, re.M)
    assert match, text
    return float(match.group(1))


def test_http_source_streaming_and_sigterm(
    service: ServeModel, flows: FlowLauncher, tmp_path: Path
) -> None:
    slow = tmp_path / "slow.py"
    slow.write_text(
        "import time\n\ndef transform(records):\n"
        "    if any(r.get('slow') for r in records):\n        time.sleep(1.5)\n"
        "    return records\n"
    )
    out = tmp_path / "served.jsonl"
    config = {
        "name": "online",
        "mode": "streaming",
        "source": {"type": "http", "direction": "source", "config": {"port": 1}},
        "sink": {"type": "file", "direction": "sink", "config": {"path": str(out)}},
        "steps": [{"type": "python", "uri": slow.as_uri()}, SCORE_STEP],
        "services": iris_services(service.url),
    }
    http_port, metrics_port = free_port(), free_port()
    run = flows.start(
        config, args=["--http-port", str(http_port), "--metrics-port", str(metrics_port)]
    )
    base = f"http://127.0.0.1:{http_port}"
    wait_until(
        lambda: any(e.get("event") == "flow activated" for e in run.events()), what="flow activated"
    )

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{metrics_port}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, what="healthz")
    one = httpx.post(base + "/score", json=SETOSA, timeout=30)
    assert one.status_code == 200 and one.json()["prediction"] == "setosa"
    assert one.json()["id"] == 1
    many = httpx.post(base + "/score", json=[SETOSA, {"id": 2}, 7], timeout=30)
    assert many.status_code == 200
    body = many.json()
    assert body[0]["prediction"] == "setosa"
    assert body[1]["$step"] == "score" and "sepal_length" in body[1]["$error"]
    assert body[2]["$step"] == "decode"
    bad = httpx.post(base + "/score", json={"id": 3}, timeout=30)
    assert bad.status_code == 422 and bad.json()["step"] == "score"

    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    assert metric(text, "tekscore_flow_records_in_total") == 5
    assert metric(text, "tekscore_flow_records_out_total") == 2
    assert metric(text, "tekscore_flow_records_failed_total") == 3
    assert "tekscore_flow_batch_seconds_bucket" in text

    answer: dict[str, Any] = {}

    def slow_request() -> None:
        answer["response"] = httpx.post(
            base + "/score", json={**SETOSA, "id": 9, "slow": True}, timeout=60
        )

    thread = threading.Thread(target=slow_request)
    thread.start()
    wait_until(
        lambda: (
            metric(
                httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text,
                "tekscore_flow_batches_in_flight",
            )
            >= 1
        ),
        what="the slow request in flight",
    )
    run.proc.send_signal(signal.SIGTERM)
    thread.join(60)
    assert answer["response"].status_code == 200
    assert answer["response"].json()["id"] == 9
    assert run.wait() == 0, run.log()
    assert [r["id"] for r in read_jsonl(out)] == [1, 1, 9]
    done = run.event("flow completed")
    assert done["records_in"] == 6 and done["records_out"] == 3
    assert_invariant(done)
