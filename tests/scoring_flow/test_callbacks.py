"""Progress and completion callbacks of a batch flow reach a scheduler stand-in (an in-test
HTTP server) with the job's bearer token, the right job and flow in the path, and counts that
keep `records_in == records_out + records_failed + records_filtered`; completion is retried
after a 503."""

from __future__ import annotations

import json
from pathlib import Path

from tests.scoring_flow.conftest import (
    SCORE_STEP,
    FlowLauncher,
    Recorder,
    ServeModel,
    assert_invariant,
    iris_services,
    read_jsonl,
)


def test_progress_and_completion_callbacks(
    iris: Path,
    service: ServeModel,
    flows: FlowLauncher,
    tmp_path: Path,
    callbacks: tuple[str, Recorder],
) -> None:
    url, seen = callbacks
    slow = tmp_path / "slow.py"
    slow.write_text(
        "import time\n\ndef transform(records):\n    time.sleep(0.05)\n    return records\n"
    )
    src = tmp_path / "in.jsonl"
    rows = [*read_jsonl(iris / "input.jsonl")[:200], {"id": -1}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {
        "name": "reported",
        "mode": "batch",
        "source": {"type": "file", "direction": "source", "config": {"path": str(src)}},
        "sink": {"type": "discard", "direction": "sink"},
        "steps": [{"type": "python", "uri": slow.as_uri()}, SCORE_STEP],
        "services": iris_services(service.url),
        "batchSize": 10,
        "concurrency": 2,
    }
    run = flows.run(
        config,
        env={
            "TEKSCORE_CALLBACK_URL": url + "/",
            "TEKSCORE_CALLBACK_TOKEN": "s3cr3t-token",
            "TEKSCORE_JOB_ID": "j-42",
            "TEKSCORE_PROGRESS_INTERVAL": "0.2",
        },
    )
    assert run.returncode == 0, run.log()
    progress = seen.of("progress")
    completes = seen.of("complete")
    assert len(progress) >= 2
    assert len(completes) == 2  # the first got a 503 and was retried
    for request in progress + completes:
        assert request["auth"] == "Bearer s3cr3t-token"
        assert (request["job"], request["flow"]) == ("j-42", "reported")
        body = request["body"]
        assert set(body) == {
            "records_in",
            "records_out",
            "records_failed",
            "records_filtered",
            "shard",
            "shards",
            "error",
        }
        assert (body["shard"], body["shards"]) == (0, 1)
    final = completes[-1]["body"]
    assert final == {
        "records_in": 201,
        "records_out": 200,
        "records_failed": 1,
        "records_filtered": 0,
        "shard": 0,
        "shards": 1,
        "error": None,
    }
    assert_invariant(final)
    ins = [p["body"]["records_in"] for p in progress]
    assert ins == sorted(ins)
    assert "s3cr3t-token" not in run.log()
