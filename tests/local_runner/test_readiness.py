"""Service readiness (`local_runner.readiness`) against scripted HTTP answers (httpx's
MockTransport, no process): ready after a few 503s, a model that failed to load told from one
still loading, a service that never becomes ready, and a process that exited judged by its
termination record, not by its log."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import structlog

from common.task_errors import TaskFailed
from local_runner.readiness import ServiceProbe, wait_ready

LOG = structlog.get_logger("test")


def probe(
    tmp_path: Path, exited: Callable[[], tuple[bool, int | None]] | None = None
) -> ServiceProbe:
    log = tmp_path / "iris.log"
    log.write_text('{"event": "model_load_failed", "model": "iris", "reason": "from the log"}\n')
    return ServiceProbe(
        name="iris",
        url="http://iris.test",
        models=["iris"],
        log=log,
        termination=tmp_path / "iris.termination.json",
        exited=exited or (lambda: (False, None)),
    )


async def wait(
    service: ServiceProbe, answer: Callable[[httpx.Request], httpx.Response], timeout: float = 10.0
) -> None:
    await wait_ready(
        [service],
        ready_timeout=timeout,
        poll=0.01,
        log=LOG,
        transport=httpx.MockTransport(answer),
    )


async def test_ready_after_a_few_503s(tmp_path: Path) -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if len([p for p in asked if p == "/v2/health/ready"]) < 3:
            if request.url.path == "/v2/models/iris/ready":
                return httpx.Response(503, json={"state": "loading", "error": "loading"})
            return httpx.Response(503, json={"error": "not ready"})
        return httpx.Response(200, json={})

    await wait(probe(tmp_path), answer)
    assert asked.count("/v2/health/ready") == 3
    assert asked.count("/v2/models/iris/ready") == 2


async def test_a_model_that_failed_is_told_from_one_still_loading(tmp_path: Path) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/models/iris/ready":
            return httpx.Response(503, json={"state": "failed", "error": "no such file"})
        return httpx.Response(503, json={"error": "not ready"})

    with pytest.raises(TaskFailed) as failed:
        await wait(probe(tmp_path), answer)
    assert failed.value.reason == "ModelLoadFailed"
    assert "could not load its model(s): no such file" in failed.value.message


async def test_a_service_that_never_gets_ready_says_its_last_answer(tmp_path: Path) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/models/iris/ready":
            return httpx.Response(503, json={"state": "loading", "error": "still importing"})
        return httpx.Response(503, json={"error": "not ready"})

    with pytest.raises(TaskFailed) as failed:
        await wait(probe(tmp_path), answer, timeout=0.2)
    assert failed.value.reason == "ServiceNotReady"
    assert "last answer: still importing" in failed.value.message


@pytest.mark.parametrize(
    ("said", "reason", "words"),
    [
        (
            {"reason": "ModelLoadFailed", "message": "model 'iris' failed to load: gone"},
            "ModelLoadFailed",
            "model 'iris' failed to load: gone; it exited with code 1",
        ),
        ({"reason": "InvalidConfig", "message": "models.0.uri: bad"}, "ServiceFailed", "bad"),
        (None, "ServiceFailed", "exited with code 1 before it was ready"),
    ],
)
async def test_an_exited_service_is_judged_by_its_termination_record(
    tmp_path: Path, said: dict[str, str] | None, reason: str, words: str
) -> None:
    service = probe(tmp_path, exited=lambda: (True, 1))
    if said is not None:
        service.termination.write_text(json.dumps(said))

    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(TaskFailed) as failed:
        await wait(service, answer)
    assert failed.value.reason == reason
    assert words in failed.value.message
    assert "from the log" not in failed.value.message.split("Last lines of")[0]
