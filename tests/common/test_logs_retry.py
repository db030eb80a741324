"""`common.logs` (one event style for every process: JSON lines with event, level, timestamp and
the bound context, standard-library loggers rendered the same way) and `common.retry` (the one
policy: retries what the predicate calls transient, re-raises the last error, stops by attempts
or by time)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
import structlog

from common.logs import configure_logging
from common.names import is_dns1123_label
from common.retry import Policy, transient_http


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Put the process's logging back as it was (these tests configure it)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def test_events_and_stdlib_lines_are_json_of_one_shape(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    structlog.contextvars.bind_contextvars(job_id="j-1")
    try:
        structlog.get_logger("t").info("job created", pipeline="p")
        structlog.get_logger("t").debug("not shown")
        logging.getLogger("aiokafka").info("not shown either: libraries log warnings and up")
        logging.getLogger("aiokafka").warning("broker %s gone", "b1")
    finally:
        structlog.contextvars.clear_contextvars()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(x["event"], x["level"]) for x in lines] == [
        ("job created", "info"),
        ("broker b1 gone", "warning"),
    ]
    assert lines[0]["job_id"] == "j-1" and lines[0]["pipeline"] == "p"
    assert lines[1]["logger"] == "aiokafka" and lines[1]["job_id"] == "j-1"
    assert all(x["timestamp"].endswith("Z") for x in lines)


def test_stdlib_too_logs_libraries_at_the_same_level(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json", stdlib_too=True)
    logging.getLogger("tests.common.a_library").info("Started server process")
    [line] = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert (line["event"], line["level"]) == ("Started server process", "info")


async def test_the_policy_retries_transient_errors_and_reraises_the_last() -> None:
    calls: list[int] = []
    request = httpx.Request("GET", "http://x")

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise httpx.ConnectError("refused", request=request)
        return "ok"

    async for attempt in Policy(retry_on=transient_http, attempts=5, first=0.001).retrying():
        with attempt:
            result = await flaky()
    assert (result, len(calls)) == ("ok", 3)

    answer = httpx.Response(404, request=request)
    with pytest.raises(httpx.HTTPStatusError):  # not transient: no retry
        for attempt in Policy(retry_on=transient_http, attempts=5, first=0.001).retrying_sync():
            with attempt:
                calls.append(1)
                answer.raise_for_status()
    assert len(calls) == 4

    with pytest.raises(httpx.HTTPStatusError):  # transient, but only 2 attempts
        for attempt in Policy(retry_on=transient_http, attempts=2, first=0.001).retrying_sync():
            with attempt:
                calls.append(1)
                httpx.Response(503, request=request).raise_for_status()
    assert len(calls) == 6


def test_a_policy_needs_a_limit_and_names_are_dns_labels() -> None:
    with pytest.raises(ValueError, match="attempts"):
        Policy(retry_on=transient_http)
    assert is_dns1123_label("j-abc123") and is_dns1123_label("a")
    assert (
        not is_dns1123_label("J-abc")
        and not is_dns1123_label("-a")
        and not is_dns1123_label("a" * 64)
    )
