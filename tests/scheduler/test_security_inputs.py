"""Every input that used to answer 500 (issue 12: 13 inputs, 5 causes; and two more found the
same way) sent through the real HTTP API to a real `tekscore serve`: each is now a 4xx that
says what is wrong, and the server logs no failed request and stays ready."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.attacks import (
    BINARY,
    COMPLEX_KEY,
    RECURSIVE_ALIAS,
    inline_pipeline,
    nested,
    nested_record_yaml,
)
from tests.scheduler.conftest import TOKEN, Scheduler
from tests.scheduler.servers import module_server

JOBS = "/api/v1/jobs"
VALIDATE = "/api/v1/pipelines/validate"
SURROGATE = "\\ud800"  # as JSON escapes it: the body is valid JSON text, the string is not text


server = module_server("inputs")


def _files(name: str, text: str) -> str:
    return json.dumps({"pipeline": {"files": {name: text}}})


def _with_surrogate(body: str, marker: str) -> str:
    """`body` (JSON text) with `marker` replaced by an escaped lone surrogate."""
    assert marker in body
    return body.replace(marker, SURROGATE)


# (route, JSON body as text, status, a part of the message)
BODIES: dict[str, tuple[str, str, int, str]] = {
    "complex key (start)": (JOBS, _files("p.yaml", COMPLEX_KEY), 422, "a mapping key must be"),
    "complex key (validate)": (VALIDATE, _files("p.yaml", COMPLEX_KEY), 422, "a mapping key"),
    "nested record 250 (start)": (
        JOBS,
        _files("p.yaml", nested_record_yaml(250)),
        422,
        "nested more than 64 levels deep",
    ),
    "nested record 250 (validate)": (
        VALIDATE,
        _files("p.yaml", nested_record_yaml(250)),
        422,
        "nested more than 64 levels deep",
    ),
    "nested JSON document (start)": (
        JOBS,
        json.dumps({"pipeline": nested(300)}),
        422,
        "JSON decode error: nested more than 100 levels deep",
    ),
    "surrogate in a file name (start)": (
        JOBS,
        _with_surrogate(_files("pMARK.yaml", inline_pipeline()), "MARK"),
        422,
        "JSON decode error: a lone UTF-16 surrogate",
    ),
    "surrogate in a record (start)": (
        JOBS,
        _with_surrogate(_files("p.yaml", inline_pipeline('{a: "xMARK"}')), "MARK"),
        422,
        "a lone UTF-16 surrogate",
    ),
    "surrogate in a record (validate)": (
        VALIDATE,
        _with_surrogate(_files("p.yaml", inline_pipeline('{a: "xMARK"}')), "MARK"),
        422,
        "a lone UTF-16 surrogate",
    ),
    "recursive alias (start)": (JOBS, _files("p.yaml", RECURSIVE_ALIAS), 422, "its own anchor"),
    "recursive alias (validate)": (VALIDATE, _files("p.yaml", RECURSIVE_ALIAS), 422, "anchor"),
    "binary (start)": (JOBS, _files("p.yaml", BINARY), 422, "!!binary values are not allowed"),
    "binary (validate)": (VALIDATE, _files("p.yaml", BINARY), 422, "!!binary"),
    "NaN parameter (start)": (
        JOBS,
        json.dumps({"pipeline": {"files": {"p.yaml": inline_pipeline()}}, "parameters": {}})[:-2]
        + '"x": NaN}}',
        422,
        "NaN is not a JSON value",
    ),
    "surrogate in a job name (start)": (
        JOBS,
        _with_surrogate(
            json.dumps({"pipeline": {"files": {"p.yaml": inline_pipeline()}}, "name": "jMARK"}),
            "MARK",
        ),
        422,
        "a lone UTF-16 surrogate",
    ),
}


def _message(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    if "errors" in body:
        return " | ".join(e["msg"] for e in body["errors"])
    return str(body["detail"])


@pytest.mark.parametrize("case", list(BODIES))
def test_a_hostile_body_is_answered_4xx_with_what_is_wrong(server: Scheduler, case: str):
    route, body, status, message = BODIES[case]
    response = server.http.post(
        route, content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert (response.status_code, message in _message(response)) == (status, True), response.text


def test_a_list_cursor_decoding_to_2_63_is_422(server: Scheduler):
    cursor = base64.urlsafe_b64encode(str(2**63).encode()).decode().rstrip("=")
    response = server.http.get(JOBS, params={"cursor": cursor})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "cursor"]
    biggest = base64.urlsafe_b64encode(str(2**63 - 1).encode()).decode().rstrip("=")
    assert server.http.get(JOBS, params={"cursor": biggest}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/ir"),
        ("GET", "/values"),
        ("POST", "/flows/f/progress"),
        ("POST", "/flows/f/complete"),
    ],
)
def test_a_non_ascii_bearer_token_is_403(server: Scheduler, method: str, path: str):
    # no such job: a 404 would mean the token passed; the check comes first
    report = {"records_in": 0, "records_out": 0, "records_failed": 0}
    response = httpx.request(
        method,
        f"{server.url}{JOBS}/j-aaaaaaaaaa{path}",
        headers=[(b"Authorization", "Bearer t\u00e9st".encode("latin-1"))],
        json=report if method == "POST" else None,
    )
    assert response.status_code == 403, response.text


def test_after_every_hostile_input_the_server_is_ready_and_logged_no_failed_request(
    server: Scheduler,
):
    for route, body, _, _ in BODIES.values():
        server.http.post(route, content=body.encode(), headers={"Content-Type": "application/json"})
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    log = server.log.read_text()
    assert '"request failed"' not in log
    assert "Exception in ASGI application" not in log
    assert TOKEN not in log
