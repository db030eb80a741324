"""The flow's two HTTP callers against scripted answers (httpx's MockTransport, no server): the
completion report retried with the one policy until the scheduler takes it, and the scoring
client's per-record failures carried as typed `ScoringError`s (retriable ones given up after
`max_retries`, a refused batch split so only the bad records fail)."""

from __future__ import annotations

import json

import httpx

from ir.values import ServiceEndpoint
from scoring_flow.config import RuntimeSettings
from scoring_flow.errors import PermanentScoringError, RetriableScoringError
from scoring_flow.items import Counters
from scoring_flow.reporting import Reporter
from scoring_flow.scoring import ScoringClient

SETTINGS = RuntimeSettings(job_id="j-1", callback_url="http://scheduler.test", callback_token="t")


async def test_the_completion_report_is_retried_until_the_scheduler_takes_it() -> None:
    seen: list[httpx.Request] = []

    def scheduler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503 if len(seen) < 3 else 202)

    counters = Counters(records_in=3, records_out=2, records_failed=1)
    async with Reporter(
        settings=SETTINGS,
        flow="f",
        shards=1,
        counters=counters,
        transport=httpx.MockTransport(scheduler),
    ) as reporter:
        assert await reporter.complete(None) is True
    assert len(seen) == 3
    assert seen[-1].url.path == "/api/v1/jobs/j-1/flows/f/complete"
    assert seen[-1].headers["Authorization"] == "Bearer t"
    assert json.loads(seen[-1].content) == {
        "records_in": 3,
        "records_out": 2,
        "records_failed": 1,
        "records_filtered": 0,
        "shard": 0,
        "shards": 1,
        "error": None,
    }


async def test_a_report_the_scheduler_keeps_refusing_is_given_up_within_its_budget() -> None:
    calls = 0

    def scheduler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503)

    async with Reporter(
        settings=SETTINGS,
        flow="f",
        shards=1,
        counters=Counters(),
        complete_budget=0.5,
        transport=httpx.MockTransport(scheduler),
    ) as reporter:
        assert await reporter.complete("boom") is False
    assert 2 <= calls < 12


def endpoint() -> dict[str, ServiceEndpoint]:
    return {"s": ServiceEndpoint(url="http://scoring.test", protocol="records", models=["m"])}


async def test_a_service_that_stays_unavailable_fails_each_record_with_a_typed_error() -> None:
    def service(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "overloaded"})

    async with ScoringClient(
        endpoint(),
        timeout=1.0,
        max_retries=2,
        backoff_max=0.01,
        transport=httpx.MockTransport(service),
    ) as client:
        answers = await client.score(service="s", model="m", payloads=[{"a": 1}, {"a": 2}])
    assert len(answers) == 2
    assert all(isinstance(a, RetriableScoringError) for a in answers)
    assert answers[0].detail == "HTTP 503: overloaded (gave up after 2 retries)"
    assert answers[0].status == 503


async def test_a_refused_batch_is_sent_record_by_record_so_only_bad_records_fail() -> None:
    def service(request: httpx.Request) -> httpx.Response:
        records = json.loads(request.content)
        if any("bad" in r for r in records):
            return httpx.Response(422, json={"error": "field 'bad' is not allowed"})
        return httpx.Response(200, json=[{"y": r["a"] * 2} for r in records])

    async with ScoringClient(
        endpoint(), timeout=1.0, max_retries=0, transport=httpx.MockTransport(service)
    ) as client:
        answers = await client.score(
            service="s", model="m", payloads=[{"a": 1}, {"a": 2, "bad": 1}, {"a": 3}]
        )
    assert answers[0] == {"y": 2} and answers[2] == {"y": 6}
    assert isinstance(answers[1], PermanentScoringError)
    assert answers[1].detail == "HTTP 422: field 'bad' is not allowed"
