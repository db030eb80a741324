"""The list route's query string: one pydantic model, parsed by hand, declared in OpenAPI."""

from __future__ import annotations

import pytest
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import QueryParams

from scheduler.api.query import parse_query
from scheduler.main import create_app
from scheduler.schemas import JobListParams
from scheduler.states import State


def test_parse_reads_repeated_and_single_parameters_and_ignores_unknown_ones() -> None:
    params = parse_query(
        JobListParams,
        QueryParams("state=RUNNING&label=a=1&label=b=2&limit=7&cursor=MTI&color=red"),
    )
    assert params.state is State.RUNNING
    assert params.label == ["a=1", "b=2"]
    assert params.limit == 7
    assert params.cursor == "MTI"
    assert parse_query(JobListParams, QueryParams("")) == JobListParams()


def test_parse_reports_every_bad_parameter_with_its_query_location() -> None:
    with pytest.raises(RequestValidationError) as caught:
        parse_query(JobListParams, QueryParams("state=DONE&limit=0&pipeline=" + "p" * 64))
    locations = sorted(tuple(e["loc"]) for e in caught.value.errors())
    assert locations == [("query", "limit"), ("query", "pipeline"), ("query", "state")]


def test_the_list_operation_declares_its_query_parameters_in_openapi() -> None:
    operation = create_app().openapi()["paths"]["/api/v1/jobs"]["get"]
    declared = {p["name"]: p for p in operation["parameters"]}
    assert set(declared) == {"state", "pipeline", "label", "limit", "cursor"}
    assert all(p["in"] == "query" and not p["required"] for p in declared.values())
    assert declared["label"]["schema"]["type"] == "array"
    assert declared["limit"]["schema"]["minimum"] == 1
    assert declared["limit"]["schema"]["maximum"] == 500
    states = [s for s in declared["state"]["schema"]["anyOf"] if "enum" in s]
    assert states[0]["enum"] == [s.value for s in State]
