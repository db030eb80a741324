"""How a flow copes with scoring services that misbehave: a scripted records server (our HTTP
boundary) answering 400 for batches with a bad record (isolated one by one), 503s that pass on
retry, 503s and timeouts that never pass (records dead-lettered with the reason); and the real
`tekscore serve-model` down at the start then up, or never up (flow failed, completion with
error, exit code 1)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from common.ports import free_port
from tests.scoring_flow.conftest import (
    SCORE_STEP,
    FlowLauncher,
    Recorder,
    ServeModel,
    ThreadServer,
    assert_invariant,
    iris_services,
    read_jsonl,
    wait_until,
)


class Script:
    """What the scripted service does; shared with the test thread."""

    def __init__(self) -> None:
        self.fail_first = 0
        self.always_503 = False
        self.sleep = 0.0
        self.calls: list[int] = []
        self.lock = threading.Lock()


@pytest.fixture
def scripted() -> Iterator[tuple[str, Script]]:
    """A records endpoint: `x * 2` per record, 400 when a batch holds `{"bad": true}`."""
    app = FastAPI()
    script = Script()

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/v2/models/{model}/records")
    async def records(model: str, request: Request) -> Any:
        body = await request.json()
        with script.lock:
            script.calls.append(len(body))
            n = len(script.calls)
        if script.sleep:
            await asyncio.sleep(script.sleep)
        if script.always_503 or n <= script.fail_first:
            return JSONResponse({"error": "overloaded"}, status_code=503)
        bad = [i for i, r in enumerate(body) if r.get("bad")]
        if bad:
            return JSONResponse({"error": f"record {bad[0]} is bad"}, status_code=400)
        return [{"y": r["x"] * 2} for r in body]

    with ThreadServer(app) as server:
        yield server.url, script


def scripted_flow(tmp_path: Path, url: str, records: list[dict[str, Any]], **extra: Any) -> dict:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    return {
        "name": "scripted",
        "mode": "batch",
        "source": {"type": "file", "direction": "source", "config": {"path": str(src)}},
        "sink": {
            "type": "file",
            "direction": "sink",
            "config": {"path": str(tmp_path / "out.jsonl")},
        },
        "deadLetter": {
            "type": "file",
            "direction": "sink",
            "config": {"path": str(tmp_path / "dead.jsonl")},
        },
        "steps": [{"type": "score", "name": "double", "model": "m", "service": "svc"}],
        "services": {"svc": {"url": url, "protocol": "records", "models": ["m"]}},
        "batchSize": 10,
        **extra,
    }


def test_a_400_batch_is_retried_record_by_record(
    scripted: tuple[str, Script], flows: FlowLauncher, tmp_path: Path
) -> None:
    url, script = scripted
    records = [{"id": i, "x": i} for i in range(20)]
    records[3]["bad"] = True
    records[14]["bad"] = True
    run = flows.run(scripted_flow(tmp_path, url, records))
    assert run.returncode == 0, run.log()
    out = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in out] == [i for i in range(20) if i not in (3, 14)]
    assert all(r["y"] == r["x"] * 2 for r in out)
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert [d["record"]["id"] for d in dead] == [3, 14]
    assert dead[0]["reason"] == "HTTP 400: record 0 is bad" and dead[0]["step"] == "double"
    assert script.calls.count(1) == 20  # two batches of 10 isolated one by one
    assert_invariant(run.event("flow completed"))


def test_503_is_retried_with_backoff_then_scored(
    scripted: tuple[str, Script], flows: FlowLauncher, tmp_path: Path
) -> None:
    url, script = scripted
    script.fail_first = 2
    records = [{"id": i, "x": i} for i in range(10)]
    run = flows.run(scripted_flow(tmp_path, url, records, maxRetries=3))
    assert run.returncode == 0, run.log()
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 10
    assert len(script.calls) == 3
    assert run.event("flow completed")["records_out"] == 10


def test_service_failing_for_good_dead_letters_the_batch(
    scripted: tuple[str, Script], flows: FlowLauncher, tmp_path: Path
) -> None:
    url, script = scripted
    script.always_503 = True
    run = flows.run(
        scripted_flow(tmp_path, url, [{"id": i, "x": i} for i in range(5)], maxRetries=2)
    )
    assert run.returncode == 1, run.log()  # every record failed: the flow fails (its policy)
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert len(dead) == 5
    assert dead[0]["reason"] == "HTTP 503: overloaded (gave up after 2 retries)"
    assert len(script.calls) == 3
    done = run.event("flow failed")
    assert done["records_failed"] == 5 and done["records_out"] == 0
    assert done["reason"].startswith("AllRecordsFailed: all 5 records failed")
    assert not read_jsonl(tmp_path / "out.jsonl")


def test_timeouts_dead_letter_with_the_reason(
    scripted: tuple[str, Script], flows: FlowLauncher, tmp_path: Path
) -> None:
    url, script = scripted
    script.sleep = 2.0
    run = flows.run(
        scripted_flow(
            tmp_path,
            url,
            [{"id": 1, "x": 1}],
            maxRetries=0,
            requestTimeoutSeconds=0.3,
            maxFailedRatio=1.0,  # a failed record fails nothing here
        )
    )
    assert run.returncode == 0, run.log()
    dead = read_jsonl(tmp_path / "dead.jsonl")
    assert "timed out after 0.3s" in dead[0]["reason"]


def test_service_down_at_start_then_up(iris: Path, flows: FlowLauncher, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = {
        "name": "late",
        "mode": "batch",
        "source": {
            "type": "file",
            "direction": "source",
            "config": {"path": str(iris / "input.jsonl")},
        },
        "sink": {
            "type": "file",
            "direction": "sink",
            "config": {"path": str(tmp_path / "out.jsonl")},
        },
        "steps": [SCORE_STEP],
        "services": iris_services(url),
    }
    run = flows.start(config)
    time.sleep(1.5)
    assert run.proc.poll() is None  # still waiting for the service
    assert not any(e.get("event") == "flow activated" for e in run.events())
    service = ServeModel(iris / "model.joblib", tmp_path, port=port)
    try:
        assert run.wait() == 0, run.log()
    finally:
        service.stop()
    assert run.event("flow completed")["records_out"] == len(read_jsonl(iris / "input.jsonl"))


def test_service_never_ready_fails_the_flow_and_reports_it(
    iris: Path,
    flows: FlowLauncher,
    tmp_path: Path,
    callbacks: tuple[str, Recorder],
) -> None:
    url, seen = callbacks
    config = {
        "name": "orphan",
        "mode": "batch",
        "source": {
            "type": "file",
            "direction": "source",
            "config": {"path": str(iris / "input.jsonl")},
        },
        "sink": {
            "type": "file",
            "direction": "sink",
            "config": {"path": str(tmp_path / "out.jsonl")},
        },
        "steps": [SCORE_STEP],
        "services": iris_services(f"http://127.0.0.1:{free_port()}"),
    }
    run = flows.run(
        config,
        env={
            "TEKSCORE_READY_TIMEOUT": "2",
            "TEKSCORE_CALLBACK_URL": url,
            "TEKSCORE_CALLBACK_TOKEN": "tok",
            "TEKSCORE_JOB_ID": "j-9",
        },
    )
    assert run.returncode == 1, run.log()
    last = run.events()[-1]
    assert last["event"] == "flow failed" and last["level"] == "error"
    assert "Scoring service 'iris'" in last["reason"] and "not ready" in last["reason"]
    completes = wait_until(lambda: [r for r in seen.of("complete")], what="complete callback")
    assert completes[-1]["body"]["error"] == last["reason"]
    assert not (tmp_path / "out.jsonl").exists()
