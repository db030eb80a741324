"""The failure policy of batch flows: by default failed records fail nothing unless every record
failed (`AllRecordsFailed`); `maxFailedRecords` / `maxFailedRatio` set limits
(`TooManyFailedRecords`). Judged after the outputs and dead letters are written; the flow then
ends failed in its completion report, termination record and exit code, and a scheduled job
(`tekscore run`) ends FAILED with a non-zero exit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ir.errors import IRValidationError
from scoring_flow.items import Counters
from scoring_flow.policy import verdict
from tests.scoring_flow.conftest import (
    TEKSCORE,
    FlowLauncher,
    Recorder,
    ServeModel,
    read_jsonl,
)
from tests.scoring_flow.test_file_flows import file_channel, flow_config


def counters(read: int, failed: int) -> Counters:
    return Counters(records_in=read, records_out=read - failed, records_failed=failed)


def test_the_verdicts() -> None:
    assert verdict(counters(0, 0), max_records=None, max_ratio=None) is None
    assert verdict(counters(10, 9), max_records=None, max_ratio=None) is None
    reason, message = verdict(counters(10, 10), max_records=None, max_ratio=None, first="x") or (
        "",
        "",
    )
    assert (
        reason == "AllRecordsFailed"
        and message == "AllRecordsFailed: all 10 records failed (first: x)"
    )
    assert verdict(counters(10, 3), max_records=3, max_ratio=None) is None
    assert verdict(counters(10, 4), max_records=3, max_ratio=None) == (
        "TooManyFailedRecords",
        "TooManyFailedRecords: 4 of 10 records failed, more than maxFailedRecords 3",
    )
    assert verdict(counters(10, 2), max_records=None, max_ratio=0.2) is None
    assert verdict(counters(10, 3), max_records=None, max_ratio=0.2) == (
        "TooManyFailedRecords",
        "TooManyFailedRecords: 3 of 10 records failed (30.0%), more than maxFailedRatio 0.2",
    )
    assert verdict(counters(10, 10), max_records=None, max_ratio=1.0) is None  # allowed


def test_the_policy_is_for_batch_flows(tmp_path: Path) -> None:
    import ir

    path = tmp_path / "flow.yaml"
    path.write_text(
        "apiVersion: tekscore.dev/v1\nkind: ScoringFlow\nmetadata: {name: f}\n"
        "spec: {mode: streaming, source: a, sink: b, maxFailedRecords: 3}\n"
    )
    with pytest.raises(
        IRValidationError, match="maxFailedRecords and maxFailedRatio are for batch"
    ):
        ir.load_paths([path])


def bad_records(path: Path, count: int) -> Path:
    path.write_text(
        "".join(json.dumps({"id": i, "sepal_length": "wide"}) + "\n" for i in range(count))
    )
    return path


SCHEMA = [{"name": "sepal_length", "type": "double"}]


def test_a_flow_whose_every_record_failed_ends_failed_with_its_dead_letters(
    service: ServeModel, flows: FlowLauncher, tmp_path: Path, callbacks: tuple[str, Recorder]
) -> None:
    url, seen = callbacks
    src = bad_records(tmp_path / "in.jsonl", 7)
    config = flow_config(
        file_channel(src, "source", schema=SCHEMA),
        file_channel(tmp_path / "out.jsonl", "sink"),
        service.url,
        deadLetter=file_channel(tmp_path / "dead.jsonl", "sink"),
    )
    run = flows.run(config, env={"TEKSCORE_CALLBACK_URL": url, "TEKSCORE_JOB_ID": "j-policy"})
    assert run.returncode == 1, run.log()
    record = run.termination()
    assert record["reason"] == "AllRecordsFailed"
    assert record["message"].startswith(
        "AllRecordsFailed: all 7 records failed (first: schema:input"
    )
    assert len(read_jsonl(tmp_path / "dead.jsonl")) == 7  # what made it fail is there to read
    assert (tmp_path / "out.jsonl").read_text() == ""
    (complete, *_) = [r["body"] for r in seen.of("complete")]
    assert complete["error"].startswith("AllRecordsFailed")
    assert run.events()[-1]["event"] == "flow failed"


def test_limits_fail_a_flow_beyond_them_and_only_beyond(
    iris: Path, service: ServeModel, flows: FlowLauncher, tmp_path: Path
) -> None:
    good = read_jsonl(iris / "input.jsonl")[:20]
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps(r) + "\n" for r in good)
        + "".join(json.dumps({"id": 900 + i, "sepal_length": "wide"}) + "\n" for i in range(5))
    )

    def run_with(**policy: Any) -> Any:
        config = flow_config(
            file_channel(src, "source", schema=SCHEMA),
            file_channel(tmp_path / "out.jsonl", "sink"),
            service.url,
            **policy,
        )
        return flows.run(config)

    assert run_with().returncode == 0  # default: some failures fail nothing
    assert run_with(maxFailedRecords=5).returncode == 0
    over = run_with(maxFailedRecords=4)
    assert over.returncode == 1 and over.termination()["reason"] == "TooManyFailedRecords"
    assert "5 of 25 records failed, more than maxFailedRecords 4" in over.termination()["message"]
    assert run_with(maxFailedRatio=0.2).returncode == 0
    assert run_with(maxFailedRatio=0.19).returncode == 1


PIPELINE = """
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {name: all-bad}
spec:
  models:
    - name: iris
      type: sklearn
      uri: "MODEL"
      schema:
        input: [{name: sepal_length, type: double}, {name: sepal_width, type: double},
                {name: petal_length, type: double}, {name: petal_width, type: double}]
  dataChannels:
    - {name: in, direction: source, type: file, config: {path: in.jsonl},
       format: {schema: [{name: sepal_length, type: double}]}}
    - {name: out, direction: sink, type: file, config: {path: out.jsonl}}
  scoringFlows:
    - {name: classify, mode: batch, source: in, sink: out, steps: [{type: score, model: iris}]}
"""


def test_a_scheduled_job_whose_records_all_failed_ends_failed(iris: Path, tmp_path: Path) -> None:
    bad_records(tmp_path / "in.jsonl", 4)
    pipeline = tmp_path / "pipeline.yaml"
    model = tmp_path / "model.joblib"  # in the pipeline's folder: its code source by default
    shutil.copyfile(iris / "model.joblib", model)
    pipeline.write_text(PIPELINE.replace("MODEL", model.as_uri()))
    done = subprocess.run(
        [str(TEKSCORE), "run", str(pipeline), "--home", str(tmp_path / "home"), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    job = json.loads(done.stdout)
    assert job["state"] == "FAILED"
    assert "AllRecordsFailed: all 4 records failed" in job["message"]
    assert job["flows"]["classify"]["records_failed"] == 4
