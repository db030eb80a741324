"""The jobs API in-process (httpx's ASGITransport over the app, its lifespan run by the test,
a runner that starts no process): invalid IR, idempotent start, auth, callback tokens, cancel
of a finished job, values and bundle, listing and pagination, health, metrics and OpenAPI. The
end-to-end paths with real processes are in test_local_backend.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scheduler.auth import callback_token
from tests.scheduler.conftest import TOKEN, Api


async def test_invalid_ir_answers_422_with_every_error_and_its_file_and_line(api: Api, iris: Path):
    bad = iris / "batch.yaml"
    text = (
        bad.read_text()
        .replace("batchSize: ${batchSize}", "batchSize: -1")
        .replace("sink: iris-scored", "sink: nowhere")
    )
    response = await api.http.post(
        "/api/v1/jobs",
        json={"pipeline": {"files": {"pipeline.yaml": text}}, "parameters": {"colour": "red"}},
    )
    assert response.status_code == 422
    errors = response.json()["errors"]
    lines = text.splitlines()
    assert {
        "loc": ["spec", "batchSize"],
        "msg": "Input should be greater than or equal to 1",
        "file": "pipeline.yaml",
        "line": lines.index("  batchSize: -1") + 1,
    } in errors
    assert response.status_code == 422
    assert len(errors) == 1, "schema errors come first; the rest is checked once the IR validates"
    fixed = text.replace("batchSize: -1", "batchSize: 8")
    response = await api.http.post(
        "/api/v1/jobs",
        json={"pipeline": {"files": {"pipeline.yaml": fixed}}, "parameters": {"colour": "red"}},
    )
    assert response.status_code == 422
    assert sorted(
        (e["file"], e.get("line"), e["msg"].split(";")[0]) for e in response.json()["errors"]
    ) == [
        ("<parameters>", None, "unknown parameter"),
        (
            "pipeline.yaml",
            next(i for i, t in enumerate(lines, 1) if t.startswith("  models: [iris]")),
            "unknown Model 'iris'",
        ),
        ("pipeline.yaml", lines.index("  sink: nowhere") + 1, "unknown data channel 'nowhere'"),
    ]


async def test_a_malformed_body_is_422_not_500(api: Api):
    body: dict[str, Any]
    for body in (
        {},
        {"pipeline": 3},
        {"pipeline": {"files": {}}},
        {"pipeline": [], "labels": {"bad key!": "x"}},
    ):
        response = await api.http.post("/api/v1/jobs", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["errors"]
    response = await api.http.post(
        "/api/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


async def test_start_is_idempotent_with_the_same_key_and_refuses_another_body(api: Api, iris: Path):
    files = {
        "pipeline": {
            "files": {str(p): p.read_text() for p in (iris / "model.yaml", iris / "batch.yaml")}
        }
    }
    headers = {"Idempotency-Key": "nightly-2026-11-21"}
    first = await api.http.post("/api/v1/jobs", json=files, headers=headers)
    second = await api.http.post("/api/v1/jobs", json=files, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]
    other = await api.http.post(
        "/api/v1/jobs", json={**files, "parameters": {"batchSize": 7}}, headers=headers
    )
    assert other.status_code == 409
    assert "Idempotency-Key" in other.json()["detail"]
    listed = (await api.http.get("/api/v1/jobs")).json()["items"]
    assert [j["id"] for j in listed] == [first.json()["id"]]
    await api.wait_for(first.json()["id"], {"SUCCEEDED"})


async def test_wrong_or_missing_tokens_are_refused(api: Api):
    anon = api.anonymous
    assert (await anon.get("/api/v1/jobs")).status_code == 401
    assert (
        await anon.get("/api/v1/jobs", headers={"Authorization": "Bearer nope"})
    ).status_code == 403
    assert (
        await anon.get("/api/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
    ).status_code == 200
    assert (await anon.get("/healthz")).status_code == 200


async def test_a_callback_token_works_for_its_own_job_only(api: Api, iris: Path):
    api.runner.hold.clear()  # both jobs stay RUNNING: a finished job refuses reports (409)
    a = await api.start_job([iris / "model.yaml", iris / "batch.yaml"])
    b = await api.start_job(
        [iris / "model.yaml", iris / "batch.yaml"], parameters={"output": "output/b.jsonl"}
    )
    token_a = callback_token(b"test-secret", a["id"])
    anon = api.anonymous
    report = {"records_in": 1, "records_out": 1, "records_failed": 0}
    own = await anon.post(
        f"/api/v1/jobs/{a['id']}/flows/classify/progress",
        json=report,
        headers={"Authorization": f"Bearer {token_a}"},
    )
    assert own.status_code == 202
    other = await anon.post(
        f"/api/v1/jobs/{b['id']}/flows/classify/progress",
        json=report,
        headers={"Authorization": f"Bearer {token_a}"},
    )
    assert other.status_code == 403
    missing = await anon.post(f"/api/v1/jobs/{b['id']}/flows/classify/complete", json=report)
    assert missing.status_code == 401
    assert (
        await anon.get(
            f"/api/v1/jobs/{a['id']}/ir",
            headers={"Authorization": f"Bearer {token_a}"},
        )
    ).status_code == 200
    assert (
        await anon.get(
            f"/api/v1/jobs/{b['id']}/ir",
            headers={"Authorization": f"Bearer {token_a}"},
        )
    ).status_code == 403
    assert (
        await anon.get(f"/api/v1/jobs/{a['id']}", headers={"Authorization": f"Bearer {token_a}"})
    ).status_code == 403
    api.runner.hold.set()
    for job in (a, b):
        await api.wait_for(job["id"], {"SUCCEEDED"})


async def test_cancel_of_a_finished_job_answers_409_with_the_job(api: Api, iris: Path):
    job = await api.start_job([iris / "model.yaml", iris / "batch.yaml"])
    await api.wait_for(job["id"], {"SUCCEEDED"})
    response = await api.http.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["state"] == "SUCCEEDED"
    assert (await api.http.post("/api/v1/jobs/j-nosuchjob0/cancel")).status_code == 404
    assert (await api.http.get("/api/v1/jobs/j-nosuchjob0")).status_code == 404


async def test_values_and_ir_bundle_of_a_job(api: Api, iris: Path):
    job = await api.start_job(
        [iris / "model.yaml", iris / "batch.yaml"], parameters={"batchSize": 64}
    )
    values = (await api.http.get(f"/api/v1/jobs/{job['id']}/values")).json()
    assert values["contentHash"] == job["content_hash"]
    assert values["job"]["id"] == job["id"]
    assert values["scoringServices"][0]["port"] == 8080  # a logical endpoint, for the runner
    assert values["scoringFlows"][0]["services"]["iris"]["service"] == "iris"
    assert values["scoringFlows"][0]["batchSize"] == 64
    bundle = (await api.http.get(f"/api/v1/jobs/{job['id']}/ir")).json()
    assert bundle["content_hash"] == job["content_hash"]
    assert bundle["parameters"] == {"batchSize": 64}
    await api.wait_for(job["id"], {"SUCCEEDED"})


async def test_listing_filters_and_pages_with_a_cursor(api: Api, iris: Path):
    ids = [
        (
            await api.start_job(
                [iris / "model.yaml", iris / "batch.yaml"],
                labels={"team": "a" if i % 2 else "b"},
                parameters={"output": f"output/{i}.jsonl"},
            )
        )["id"]
        for i in range(5)
    ]
    page = (await api.http.get("/api/v1/jobs", params={"limit": 2})).json()
    seen = [j["id"] for j in page["items"]]
    while page["next"]:
        page = (
            await api.http.get("/api/v1/jobs", params={"limit": 2, "cursor": page["next"]})
        ).json()
        seen += [j["id"] for j in page["items"]]
    assert seen == ids[::-1]
    team_a = (await api.http.get("/api/v1/jobs", params={"label": "team=a"})).json()["items"]
    assert [j["id"] for j in team_a] == [ids[3], ids[1]]
    assert (await api.http.get("/api/v1/jobs", params={"pipeline": "other"})).json()["items"] == []
    assert (await api.http.get("/api/v1/jobs", params={"cursor": "garbage!"})).status_code == 422
    assert (await api.http.get("/api/v1/jobs", params={"label": "novalue"})).status_code == 422
    too_small = await api.http.get("/api/v1/jobs", params={"limit": 0})
    assert too_small.status_code == 422
    assert [e["loc"] for e in too_small.json()["errors"]] == [["query", "limit"]]
    for job_id in ids:
        await api.wait_for(job_id, {"SUCCEEDED"})
    done = (await api.http.get("/api/v1/jobs", params={"state": "SUCCEEDED"})).json()["items"]
    assert len(done) == 5


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
async def test_health_metrics_and_openapi_answer(api: Api, path: str):
    anon = api.anonymous
    response = await anon.get(f"{path}")
    assert response.status_code == 200
    if path == "/metrics":
        assert "tekscore_jobs" in response.text
