"""Waiting for local scoring services to become ready, and saying precisely why one did not.

Does network I/O: polls each service's `GET /v2/health/ready` (httpx) and, while it answers 503,
`GET /v2/models/{m}/ready` to tell a model that failed to load from one still loading.
Outcomes (`TaskFailed` reasons): `ModelLoadFailed` (a model's state is `failed`, or the process
exited and its termination record says `ModelLoadFailed`), `ServiceFailed` (the process exited),
`ServiceNotReady` (the deadline passed). Messages carry the model error and the log's tail.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import structlog

from common.task_errors import TaskFailed
from common.termination import read_termination
from local_runner.processes import public_tail


@dataclass(frozen=True, kw_only=True)
class ServiceProbe:
    """One started service: where it answers, its models, its log, and how to see it exit."""

    name: str
    url: str
    models: Sequence[str]
    log: Path
    termination: Path
    exited: Callable[[], tuple[bool, int | None]]


async def wait_ready(
    services: Sequence[ServiceProbe],
    *,
    ready_timeout: float,
    poll: float,
    log: structlog.typing.FilteringBoundLogger,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Return once every service is ready; raise the first `TaskFailed` otherwise."""
    if not services:
        return
    deadline = time.monotonic() + ready_timeout
    async with httpx.AsyncClient(
        timeout=2.0, trust_env=False, transport=transport, verify=_tls()
    ) as client:
        tasks = [
            asyncio.create_task(_until_ready(client, s, deadline, ready_timeout, poll, log))
            for s in services
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if not task.cancelled() and (exc := task.exception()) is not None:
                raise exc


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for the server's life: a new client would load the CA bundle again for
    every job installed (25 ms idle, up to 0.25 s on a busy machine, blocking the event loop),
    although the probes are plain HTTP on loopback."""
    return httpx.create_ssl_context()


async def _until_ready(
    client: httpx.AsyncClient,
    service: ServiceProbe,
    deadline: float,
    ready_timeout: float,
    poll: float,
    log: structlog.typing.FilteringBoundLogger,
) -> None:
    name, url = service.name, service.url
    last = "no answer yet"
    while True:
        exited, code = service.exited()
        if exited:
            raise _exit_failure(service, code)
        try:
            answer = await client.get(f"{url}/v2/health/ready")
            if answer.status_code == 200:
                log.info("service ready", service=name, url=url)
                return
            last = describe(answer)
            states = await _model_states(client, service)
            failed = [error for state, error in states.values() if state == "failed"]
            if failed:
                raise _failed(
                    "ModelLoadFailed",
                    f"Scoring service {name!r} could not load its model(s): {'; '.join(failed)}.",
                    service,
                )
            if states:
                last = "; ".join(error for _, error in states.values())
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if time.monotonic() >= deadline:
            raise _failed(
                "ServiceNotReady",
                f"Scoring service {name!r} was not ready within {ready_timeout:g} s; "
                f"last answer: {last}.",
                service,
            )
        await asyncio.sleep(poll)


def _exit_failure(service: ServiceProbe, code: int | None) -> TaskFailed:
    said = read_termination(service.termination)
    if said is not None and said.reason == "ModelLoadFailed":
        return _failed(
            "ModelLoadFailed",
            f"Scoring service {service.name!r} could not load its model(s): {said.message}; "
            f"it exited with code {code}.",
            service,
        )
    why = f" {said.message}" if said is not None and said.message else ""
    return _failed(
        "ServiceFailed",
        f"Scoring service {service.name!r} exited with code {code} before it was ready.{why}",
        service,
    )


def _failed(reason: str, message: str, service: ServiceProbe) -> TaskFailed:
    """The service's failure, its log tail attached apart from the message."""
    return TaskFailed(
        reason, message, part=("service", service.name), log_tail=public_tail(service.log)
    )


async def _model_states(
    client: httpx.AsyncClient, service: ServiceProbe
) -> dict[str, tuple[str, str]]:
    """model -> (state, error) for each model whose `/v2/models/{m}/ready` says not ready."""
    states: dict[str, tuple[str, str]] = {}
    for model in service.models:
        answer = await client.get(f"{service.url}/v2/models/{model}/ready")
        if answer.status_code == 200:
            continue
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        states[model] = (
            str(body.get("state", "unknown")),
            str(body.get("error") or describe(answer)),
        )
    return states


def describe(answer: httpx.Response) -> str:
    """`HTTP 503: <the error the body gives>` or just the status."""
    try:
        body = answer.json()
    except ValueError:
        return f"HTTP {answer.status_code}"
    if isinstance(body, dict) and body.get("error"):
        return f"HTTP {answer.status_code}: {body['error']}"
    return f"HTTP {answer.status_code}"
