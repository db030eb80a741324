"""The jobs API through real HTTP against a real `tekscore serve` with real child processes:
the iris batch job end to end, invalid IR, idempotent start, auth, callback tokens, cancel of a
finished job, listing and pagination."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import joblib
import pytest

from scheduler.auth import callback_token
from tests.scheduler.conftest import TOKEN, Scheduler

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def test_the_iris_batch_job_succeeds_with_exact_counts_and_correct_output(
    scheduler: Scheduler, iris: Path
):
    job = scheduler.start_job(
        [iris / "model.yaml", iris / "batch.yaml"], parameters={"batchSize": 32}
    )
    assert job["state"] in ("PENDING", "INSTALLING")
    assert job["backend"] == {
        "kind": "local",
        "namespace": None,
        "pipelinerun": None,
        "release": job["id"],
    }
    done = scheduler.wait_for(job["id"], {"SUCCEEDED", "FAILED", "CANCELLED"})
    assert done["state"] == "SUCCEEDED", done
    assert done["task"] is None
    assert done["flows"]["classify"] == {
        "mode": "batch",
        "state": "COMPLETED",
        "records_in": 150,
        "records_out": 150,
        "records_failed": 0,
        "records_filtered": 0,
        "shards": 1,
        "shards_done": 1,
        "error": None,
    }
    records = [
        json.loads(line) for line in (iris / "output" / "scored.jsonl").read_text().splitlines()
    ]
    inputs = [json.loads(line) for line in (iris / "input.jsonl").read_text().splitlines()]
    model = joblib.load(iris / "model.joblib")
    expected = model.predict([[r[f] for f in FEATURES] for r in inputs])
    assert [r["id"] for r in records] == [r["id"] for r in inputs]
    assert [r["species"] for r in records] == list(expected)
    states = [e["state"] for e in scheduler.http.get(f"/api/v1/jobs/{job['id']}/events").json()]
    assert states == ["PENDING", "INSTALLING", "RUNNING", "STOPPING", "SUCCEEDED"]
    assert scheduler.job_processes(job["id"]) == []


def test_invalid_ir_answers_422_with_every_error_and_its_file_and_line(
    scheduler: Scheduler, iris: Path
):
    bad = iris / "batch.yaml"
    text = (
        bad.read_text()
        .replace("batchSize: ${batchSize}", "batchSize: -1")
        .replace("sink: iris-scored", "sink: nowhere")
    )
    response = scheduler.http.post(
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
    response = scheduler.http.post(
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


def test_a_malformed_body_is_422_not_500(scheduler: Scheduler):
    for body in (
        {},
        {"pipeline": 3},
        {"pipeline": {"files": {}}},
        {"pipeline": [], "labels": {"bad key!": "x"}},
    ):
        response = scheduler.http.post("/api/v1/jobs", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["errors"]
    response = scheduler.http.post(
        "/api/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


def test_start_is_idempotent_with_the_same_key_and_refuses_another_body(
    scheduler: Scheduler, iris: Path
):
    files = {
        "pipeline": {
            "files": {str(p): p.read_text() for p in (iris / "model.yaml", iris / "batch.yaml")}
        }
    }
    headers = {"Idempotency-Key": "nightly-2026-11-21"}
    first = scheduler.http.post("/api/v1/jobs", json=files, headers=headers)
    second = scheduler.http.post("/api/v1/jobs", json=files, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]
    other = scheduler.http.post(
        "/api/v1/jobs", json={**files, "parameters": {"batchSize": 7}}, headers=headers
    )
    assert other.status_code == 409
    assert "Idempotency-Key" in other.json()["detail"]
    listed = scheduler.http.get("/api/v1/jobs").json()["items"]
    assert [j["id"] for j in listed] == [first.json()["id"]]
    scheduler.wait_for(first.json()["id"], {"SUCCEEDED"})


def test_wrong_or_missing_tokens_are_refused(scheduler: Scheduler):
    assert httpx.get(f"{scheduler.url}/api/v1/jobs").status_code == 401
    assert (
        httpx.get(
            f"{scheduler.url}/api/v1/jobs", headers={"Authorization": "Bearer nope"}
        ).status_code
        == 403
    )
    assert (
        httpx.get(
            f"{scheduler.url}/api/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"}
        ).status_code
        == 200
    )
    assert httpx.get(f"{scheduler.url}/healthz").status_code == 200


def test_a_callback_token_works_for_its_own_job_only(scheduler: Scheduler, iris: Path):
    a = scheduler.start_job([iris / "model.yaml", iris / "batch.yaml"])
    b = scheduler.start_job(
        [iris / "model.yaml", iris / "batch.yaml"], parameters={"output": "output/b.jsonl"}
    )
    token_a = callback_token(b"test-secret", a["id"])
    report = {"records_in": 1, "records_out": 1, "records_failed": 0}
    own = httpx.post(
        f"{scheduler.url}/api/v1/jobs/{a['id']}/flows/classify/progress",
        json=report,
        headers={"Authorization": f"Bearer {token_a}"},
    )
    assert own.status_code == 202
    other = httpx.post(
        f"{scheduler.url}/api/v1/jobs/{b['id']}/flows/classify/progress",
        json=report,
        headers={"Authorization": f"Bearer {token_a}"},
    )
    assert other.status_code == 403
    missing = httpx.post(
        f"{scheduler.url}/api/v1/jobs/{b['id']}/flows/classify/complete", json=report
    )
    assert missing.status_code == 401
    assert (
        httpx.get(
            f"{scheduler.url}/api/v1/jobs/{a['id']}/ir",
            headers={"Authorization": f"Bearer {token_a}"},
        ).status_code
        == 200
    )
    assert (
        httpx.get(
            f"{scheduler.url}/api/v1/jobs/{b['id']}/ir",
            headers={"Authorization": f"Bearer {token_a}"},
        ).status_code
        == 403
    )
    assert (
        httpx.get(
            f"{scheduler.url}/api/v1/jobs/{a['id']}", headers={"Authorization": f"Bearer {token_a}"}
        ).status_code
        == 403
    )
    for job in (a, b):
        scheduler.wait_for(job["id"], {"SUCCEEDED"})


def test_cancel_of_a_finished_job_answers_409_with_the_job(scheduler: Scheduler, iris: Path):
    job = scheduler.start_job([iris / "model.yaml", iris / "batch.yaml"])
    scheduler.wait_for(job["id"], {"SUCCEEDED"})
    response = scheduler.http.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["state"] == "SUCCEEDED"
    assert scheduler.http.post("/api/v1/jobs/j-nosuchjob0/cancel").status_code == 404
    assert scheduler.http.get("/api/v1/jobs/j-nosuchjob0").status_code == 404


def test_values_and_ir_bundle_of_a_job(scheduler: Scheduler, iris: Path):
    job = scheduler.start_job(
        [iris / "model.yaml", iris / "batch.yaml"], parameters={"batchSize": 64}
    )
    values = scheduler.http.get(f"/api/v1/jobs/{job['id']}/values").json()
    assert values["contentHash"] == job["content_hash"]
    assert values["job"]["id"] == job["id"]
    assert values["scoringServices"][0]["url"] == f"http://{job['id']}-iris:8080"
    assert values["scoringFlows"][0]["batchSize"] == 64
    bundle = scheduler.http.get(f"/api/v1/jobs/{job['id']}/ir").json()
    assert bundle["content_hash"] == job["content_hash"]
    assert bundle["parameters"] == {"batchSize": 64}
    scheduler.wait_for(job["id"], {"SUCCEEDED"})


def test_listing_filters_and_pages_with_a_cursor(scheduler: Scheduler, iris: Path):
    ids = [
        scheduler.start_job(
            [iris / "model.yaml", iris / "batch.yaml"],
            labels={"team": "a" if i % 2 else "b"},
            parameters={"output": f"output/{i}.jsonl"},
        )["id"]
        for i in range(5)
    ]
    page = scheduler.http.get("/api/v1/jobs", params={"limit": 2}).json()
    seen = [j["id"] for j in page["items"]]
    while page["next"]:
        page = scheduler.http.get(
            "/api/v1/jobs", params={"limit": 2, "cursor": page["next"]}
        ).json()
        seen += [j["id"] for j in page["items"]]
    assert seen == ids[::-1]
    team_a = scheduler.http.get("/api/v1/jobs", params={"label": "team=a"}).json()["items"]
    assert [j["id"] for j in team_a] == [ids[3], ids[1]]
    assert scheduler.http.get("/api/v1/jobs", params={"pipeline": "other"}).json()["items"] == []
    assert scheduler.http.get("/api/v1/jobs", params={"cursor": "garbage!"}).status_code == 422
    assert scheduler.http.get("/api/v1/jobs", params={"label": "novalue"}).status_code == 422
    too_small = scheduler.http.get("/api/v1/jobs", params={"limit": 0})
    assert too_small.status_code == 422
    assert [e["loc"] for e in too_small.json()["errors"]] == [["query", "limit"]]
    for job_id in ids:
        scheduler.wait_for(job_id, {"SUCCEEDED"})
    done = scheduler.http.get("/api/v1/jobs", params={"state": "SUCCEEDED"}).json()["items"]
    assert len(done) == 5


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
def test_health_metrics_and_openapi_answer(scheduler: Scheduler, path: str):
    response = httpx.get(f"{scheduler.url}{path}")
    assert response.status_code == 200
    if path == "/metrics":
        assert "tekscore_jobs" in response.text
