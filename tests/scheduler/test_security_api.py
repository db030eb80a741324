"""The API's access rules and promises against a real `tekscore serve`: which role may call which
route (read < submit < admin, a token without a role is admin), the OpenAPI marks that say so,
`/pipelines/validate` redacting as `/values` does, and a server that refuses to start (exit code,
no hang) on a bad token list or a state database it cannot open."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.ports import free_port
from tests.attacks import inline_pipeline
from tests.scheduler.conftest import TEKSCORE, TOKEN, Scheduler
from tests.scheduler.servers import module_server

READER, SUBMITTER = "reader-token", "submitter-token"
TOKENS = f"{TOKEN},{READER}:read,{SUBMITTER}:submit"  # TOKEN alone: admin, the old form
ROLES = ("read", "submit", "admin")
WHO = {"read": READER, "submit": SUBMITTER, "admin": TOKEN}

# every operation with a token: (method, path, role it needs); {id} is a finished job
ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/api/v1/jobs", "read"),
    ("GET", "/api/v1/jobs/{id}", "read"),
    ("GET", "/api/v1/jobs/{id}/events", "read"),
    ("GET", "/api/v1/jobs/{id}/logs", "read"),
    ("GET", "/api/v1/jobs/{id}/values", "read"),
    ("GET", "/api/v1/jobs/{id}/ir", "submit"),
    ("GET", "/api/v1/userinfo", "read"),
    ("POST", "/api/v1/pipelines/validate", "submit"),
    ("POST", "/api/v1/jobs", "submit"),
    ("POST", "/api/v1/jobs/{id}/cancel", "submit"),
    ("POST", "/api/v1/jobs/{id}/flows/{flow}/progress", "admin"),
    ("POST", "/api/v1/jobs/{id}/flows/{flow}/complete", "admin"),
]
REPORT = {"records_in": 0, "records_out": 0, "records_failed": 0}


server = module_server("roles", tokens=TOKENS)


@pytest.fixture(scope="module")
def finished_job(server: Scheduler) -> str:
    response = server.http.post(
        "/api/v1/jobs", json={"pipeline": {"files": {"p.yaml": inline_pipeline()}}}
    )
    assert response.status_code == 201, response.text
    return str(server.wait_for(response.json()["id"], {"SUCCEEDED"})["id"])


def _call(server: Scheduler, method: str, path: str, job: str, token: str | None) -> httpx.Response:
    # flow "nope" does not exist: an allowed report answers 404 and changes nothing
    url = server.url + path.replace("{id}", job).replace("{flow}", "nope")
    body: Any = None
    if path.endswith(("/progress", "/complete")):
        body = REPORT
    elif method == "POST" and not path.endswith("/cancel"):
        body = {"pipeline": {"files": {"p.yaml": inline_pipeline()}}}
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.request(method, url, json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_call_exactly_the_routes_of_its_role_and_below(
    server: Scheduler, finished_job: str, role: str
):
    allowed, refused = [], []
    for method, path, needs in ROUTES:
        response = _call(server, method, path, finished_job, WHO[role])
        if ROLES.index(role) >= ROLES.index(needs):
            allowed.append((method, path, response.status_code))
        else:
            refused.append((method, path, response.status_code, response.json()["detail"]))
            assert (
                response.json()["detail"] == f"this token's role is {role}; this call needs {needs}"
            )
        if method == "POST" and path == "/api/v1/jobs" and response.status_code == 201:
            server.wait_for(response.json()["id"], {"SUCCEEDED"})
    assert all(status not in (401, 403) for *_, status in allowed), allowed
    assert all(status == 403 for _, _, status, _ in refused), refused
    assert len(allowed) == sum(ROLES.index(role) >= ROLES.index(n) for *_, n in ROUTES)


def test_no_token_is_401_and_an_unknown_token_is_403_on_every_route(
    server: Scheduler, finished_job: str
):
    for method, path, _ in ROUTES:
        assert _call(server, method, path, finished_job, None).status_code == 401, path
        assert _call(server, method, path, finished_job, "nope").status_code == 403, path
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert httpx.get(f"{server.url}/metrics").status_code == 200


def test_the_openapi_schema_marks_each_operation_with_its_role(server: Scheduler):
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    marks = {
        (method.upper(), path, op.get("x-tekscore-role"))
        for path, ops in paths.items()
        for method, op in ops.items()
        if path.startswith("/api/")
    }
    expected = {(m, p.replace("{id}", "{job_id}"), r) for m, p, r in ROUTES}
    assert marks == expected
    values = paths["/api/v1/jobs/{job_id}/values"]["get"]
    assert values["x-tekscore-callback-token"] is True


def test_validate_redacts_secret_looking_values_as_values_does(server: Scheduler):
    text = inline_pipeline("{a: 1, password: hunter2, api-token: abc123}")
    request = {"pipeline": {"files": {"p.yaml": text}}}
    validated = server.http.post("/api/v1/pipelines/validate", json=request)
    assert validated.status_code == 200, validated.text
    job = server.http.post("/api/v1/jobs", json=request).json()
    stored = server.http.get(f"/api/v1/jobs/{job['id']}/values").json()
    server.wait_for(job["id"], {"SUCCEEDED"})
    for values in (validated.json(), stored):
        record = values["scoringFlows"][0]["source"]["config"]["records"][0]
        assert record == {"a": 1, "password": "***", "api-token": "***"}
    assert "hunter2" not in validated.text


def _serve(home: Path, tokens: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TEKSCORE_HOME": str(home), "TEKSCORE_API_TOKENS": tokens}
    return subprocess.Popen(
        [TEKSCORE, "serve", "--port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_token_list_with_an_unknown_role_stops_the_server_without_quoting_tokens(tmp_path):
    proc = _serve(tmp_path / "home", f"{TOKEN},do-not-print-me:reed")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    text = (out + err).decode()
    assert "TEKSCORE_API_TOKENS entry 2: unknown role 'reed'" in text
    assert "do-not-print-me" not in text and TOKEN not in text


def test_a_state_database_that_is_not_one_makes_the_server_exit_not_hang(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "state.db").write_bytes(os.urandom(20_000))  # what a file sink there left
    proc = _serve(home, TOKEN)
    try:
        out, err = proc.communicate(timeout=60)  # a hang is a timeout here
    finally:
        proc.kill()
    assert proc.returncode not in (0, None)
    lines = [json.loads(line) for line in (out + err).decode().splitlines() if line.startswith("{")]
    errors = [line for line in lines if line.get("event") == "scheduler cannot start"]
    assert errors and errors[0]["error"].startswith(
        f"cannot open the job store {home / 'state.db'}: file is not a database"
    )
