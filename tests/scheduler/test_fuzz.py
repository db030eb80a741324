"""Property-based fuzzing of the API from its own OpenAPI schema (schemathesis) against a real
server: whatever is sent, the server never answers 500."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.scheduler.conftest import TOKEN, Scheduler


def test_no_request_makes_the_server_fail(scheduler: Scheduler):
    schema = schemathesis.openapi.from_url(f"{scheduler.url}/openapi.json")
    failures: list[str] = []
    sent: list[int] = []
    for operation in schema.get_all_operations():
        op = operation.ok()  # type: ignore[union-attr]

        @settings(
            max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(case=op.as_strategy())
        def check(case: schemathesis.Case) -> None:
            response = case.call(
                base_url=scheduler.url, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            sent.append(response.status_code)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}"
                )

        check()
    assert failures == []
    assert len(sent) > 100, "the fuzzer sent too few requests to mean anything"
    assert {400, 404, 422} & set(sent), (
        "no request was refused: the fuzzer did not reach the validation"
    )
