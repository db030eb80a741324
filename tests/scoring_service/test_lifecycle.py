"""The service's life over real processes: live-but-not-ready while a model loads, a clear
not-ready reason when a python module fits no convention, concurrent requests, several
worker processes, Prometheus metrics, and SIGTERM letting an in-flight request finish."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from tests.scoring_service.conftest import FEATURES, Server, wait_until


def test_live_but_not_ready_while_loading(models_dir: Path, start_server: Any) -> None:
    server = start_server(["--model", f"sleepy=python:{models_dir / 'sleepy.py'}"]).wait_live()
    ready = server.client.get("/v2/health/ready")
    assert ready.status_code == 503
    assert "loading" in ready.json()["error"]
    model_ready = server.client.get("/v2/models/sleepy/ready")
    assert model_ready.status_code == 503 and model_ready.json()["state"] == "loading"
    response = server.client.post("/v2/models/sleepy/records", json=[{}])
    assert response.status_code == 503 and "not ready" in response.json()["error"]
    server.wait_ready()
    assert server.client.post("/v2/models/sleepy/records", json=[{}]).json() == [{"ok": True}]


def test_module_without_convention_keeps_service_not_ready(
    models_dir: Path, start_server: Any
) -> None:
    server = start_server(["--model", f"noconv=python:{models_dir / 'noconv.py'}"]).wait_live()

    def failed() -> bool:
        return server.client.get("/v2/models/noconv/ready").json().get("state") == "failed"

    wait_until(failed, what="load failure")
    body = server.client.get("/v2/models/noconv/ready").json()
    assert "follows none of the conventions" in body["error"]
    assert server.client.get("/v2/health/ready").status_code == 503
    assert server.client.get("/v2/health/live").status_code == 200


def test_concurrent_requests_each_get_their_own_answer(
    main_server: Server, iris_records: list[dict[str, Any]]
) -> None:
    async def run() -> list[tuple[int, list[Any]]]:
        async with httpx.AsyncClient(base_url=main_server.url, timeout=60) as client:

            async def one(i: int) -> tuple[int, list[Any]]:
                batch = iris_records[i : i + 1 + i % 7]
                model = ["iris", "adder", "vec"][i % 3]
                if model == "adder":
                    batch = [{"x": float(i)}]
                response = await client.post(f"/v2/models/{model}/records", json=batch)
                assert response.status_code == 200
                return i, response.json()

            return await asyncio.gather(*(one(i) for i in range(60)))

    for i, results in asyncio.run(run()):
        if i % 3 == 1:
            assert results == [{"sum": float(i), "double": 2.0 * i}]
        elif i % 3 == 2:
            assert [r["id"] for r in results] == [r["id"] for r in iris_records[i : i + 1 + i % 7]]
        else:
            assert len(results) == 1 + i % 7 and "prediction" in results[0]


def test_metrics_count_requests_rows_and_errors(main_server: Server) -> None:
    record = dict.fromkeys(FEATURES, 1.0)
    main_server.client.post("/v2/models/iris/records", json=[record, record, {"x": 1}])
    text = main_server.client.get("/metrics").text
    assert 'tekscore_model_requests_total{code="200",endpoint="records",model="iris"}' in text
    assert 'tekscore_model_rows_total{endpoint="records",model="iris"}' in text
    assert 'tekscore_model_errors_total{endpoint="records",kind="record",model="iris"}' in text
    assert "tekscore_model_request_duration_seconds_bucket" in text
    assert 'tekscore_model_ready{model="iris"} 1.0' in text


def test_workers_serve_the_same_models(
    iris_model_path: Path, tmp_path: Path, start_server: Any
) -> None:
    from tests.scoring_service.conftest import IRIS_INPUT, write_config

    config = write_config(
        tmp_path / "svc.yaml",
        [
            {
                "name": "iris",
                "type": "sklearn",
                "uri": iris_model_path.as_uri(),
                "schema": {"input": IRIS_INPUT},
            }
        ],
        workers=2,
    )
    server = start_server(["--config", str(config)]).wait_ready()
    record = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}
    for _ in range(10):
        response = server.client.post("/v2/models/iris/records", json=[record])
        assert response.json()[0]["prediction"] == "virginica"
    assert server.stop() in (0, -signal.SIGTERM)


def test_sigterm_lets_the_in_flight_request_finish(
    models_dir: Path, start_server: Any, tmp_path: Path
) -> None:
    server = start_server(["--model", f"slow=python:{models_dir / 'slow.py'}"]).wait_ready()
    marker = tmp_path / "started"
    outcome: dict[str, Any] = {}

    async def run() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            request = asyncio.create_task(
                client.post(
                    "/v2/models/slow/records", json=[{"marker": str(marker), "seconds": 2.0}]
                )
            )
            deadline = time.monotonic() + 60
            while not marker.exists():
                assert time.monotonic() < deadline, "the request never started"
                await asyncio.sleep(0.02)
            server.proc.send_signal(signal.SIGTERM)
            response = await request
            outcome["status"] = response.status_code
            outcome["body"] = response.json()

    asyncio.run(run())
    assert outcome == {"status": 200, "body": [{"slept": 2.0}]}
    # uvicorn re-raises the signal once it has shut down gracefully: -SIGTERM, or 0.
    assert server.proc.wait(timeout=60) in (0, -signal.SIGTERM)


def test_readiness_counts_only_live_workers_that_loaded(tmp_path: Path) -> None:
    """With --workers N, ready means every live worker has loaded its models."""
    import os
    import subprocess
    import sys

    from scoring_service.workers import WorkerReadiness

    workers = WorkerReadiness(tmp_path, expected=2)
    workers.mark_ready()
    assert workers.ready_count() == 1
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (tmp_path / gone.stdout.strip()).touch()  # a worker that died after loading
    assert workers.ready_count() == 1
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / str(other.pid)).touch()
        assert workers.ready_count() == 2
    finally:
        other.kill()
        other.wait()
    assert str(os.getpid()) in os.listdir(tmp_path)
