"""File flows end to end against a real `tekscore serve-model` with the iris model, each run as a
real `tekscore flow run` subprocess: jsonl/csv/avro round trips with predictions equal to the
model's own, dead letters (undecodable record, input and output schema violations, records the
service rejects), filter counts, shards, a python step, and an atomic sink after SIGKILL."""

from __future__ import annotations

import csv
import json
import signal
from pathlib import Path
from typing import Any

import fastavro
import joblib
import numpy as np

from tests.scoring_flow.conftest import (
    FEATURES,
    IRIS_RECORDS,
    SCORE_STEP,
    FlowLauncher,
    ServeModel,
    assert_invariant,
    iris_services,
    read_jsonl,
    wait_until,
)

IRIS_SCHEMA = [{"name": "id", "type": "long"}] + [{"name": f, "type": "double"} for f in FEATURES]
OUT_SCHEMA = [*IRIS_SCHEMA, {"name": "prediction", "type": "string"}]


def file_channel(path: Path, direction: str, encoding: str = "jsonl", schema: Any = None) -> dict:
    fmt: dict[str, Any] = {"encoding": encoding}
    if schema is not None:
        fmt["schema"] = schema
    return {"type": "file", "direction": direction, "format": fmt, "config": {"path": str(path)}}


def flow_config(source: dict, sink: dict, url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "classify",
        "mode": "batch",
        "source": source,
        "sink": sink,
        "steps": [SCORE_STEP],
        "services": iris_services(url),
        "batchSize": 64,
        **extra,
    }


def expected_predictions(iris: Path, records: list[dict[str, Any]]) -> list[str]:
    model = joblib.load(iris / "model.joblib")
    x = np.array([[r[f] for f in FEATURES] for r in records], dtype=float)
    return [str(p) for p in model.predict(x)]


def test_iris_jsonl_file_to_file_matches_the_model(
    iris: Path, service: ServeModel, flows: FlowLauncher, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "scored.jsonl"
    run = flows.run(
        flow_config(
            file_channel(iris / "input.jsonl", "source"), file_channel(out, "sink"), service.url
        )
    )
    assert run.returncode == 0, run.log()
    inputs = read_jsonl(iris / "input.jsonl")
    outputs = read_jsonl(out)
    assert [o["id"] for o in outputs] == [r["id"] for r in inputs]  # order preserved
    assert [o["prediction"] for o in outputs] == expected_predictions(iris, inputs)
    assert all(abs(sum(o[k] for k in o if k.startswith("proba_")) - 1) < 1e-6 for o in outputs)
    done = run.event("flow completed")
    assert done["records_in"] == done["records_out"] == IRIS_RECORDS
    assert_invariant(done)
    said = run.termination()
    assert said["reason"] == "Completed"
    assert {k: said[k] for k in done if k.startswith("records_")} == {
        k: done[k] for k in done if k.startswith("records_")
    }
    activated = run.event("flow activated")
    assert activated["job_id"] == "standalone" and activated["flow"] == "classify"
    assert activated["steps"] == ["score"]


def test_csv_round_trip(
    iris: Path, service: ServeModel, flows: FlowLauncher, tmp_path: Path
) -> None:
    records = read_jsonl(iris / "input.jsonl")[:100]
    src = tmp_path / "in.csv"
    with src.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", *FEATURES])
        writer.writeheader()
        writer.writerows(records)
    out = tmp_path / "out.csv"
    sink = file_channel(out, "sink", "csv", OUT_SCHEMA)
    step = {**SCORE_STEP, "outputs": {"prediction": "prediction"}}
    run = flows.run(
        flow_config(
            file_channel(src, "source", "csv", IRIS_SCHEMA), sink, service.url, steps=[step]
        )
    )
    assert run.returncode == 0, run.log()
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [s["name"] for s in OUT_SCHEMA]
    assert [int(r["id"]) for r in rows] == [r["id"] for r in records]
    assert [r["prediction"] for r in rows] == expected_predictions(iris, records)


def test_avro_round_trip(
    iris: Path, service: ServeModel, flows: FlowLauncher, tmp_path: Path
) -> None:
    records = read_jsonl(iris / "input.jsonl")[:100]
    src = tmp_path / "in.avro"
    schema = {
        "type": "record",
        "name": "Iris",
        "fields": [
            {"name": "id", "type": "long"},
            *({"name": f, "type": "double"} for f in FEATURES),
        ],
    }
    with src.open("wb") as f:
        fastavro.writer(f, schema, records)
    out = tmp_path / "out.avro"
    run = flows.run(
        flow_config(
            file_channel(src, "source", "avro"),
            file_channel(out, "sink", "avro", OUT_SCHEMA),
            service.url,
        )
    )
    assert run.returncode == 0, run.log()
    with out.open("rb") as fh:
        got: list[Any] = list(fastavro.reader(fh))
    assert [g["id"] for g in got] == [r["id"] for r in records]
    assert [g["prediction"] for g in got] == expected_predictions(iris, records)
    assert set(got[0]) == {s["name"] for s in OUT_SCHEMA}


def test_dead_letters_with_reasons(
    iris: Path, service: ServeModel, flows: FlowLauncher, tmp_path: Path
) -> None:
    good = read_jsonl(iris / "input.jsonl")[:50]
    src = tmp_path / "in.jsonl"
    lines = [json.dumps(r) for r in good]
    lines.insert(5, "{not json")  # undecodable
    lines.insert(10, json.dumps({"id": 1000, "sepal_length": "wide"}))  # violates input schema
    lines.insert(
        15,
        json.dumps(
            {
                "id": 1001,
                "sepal_length": 1.0,
                "sepal_width": 1.0,
                "petal_length": 1.0,
                "petal_width": 1.0,
                "bad": True,
            }
        ),
    )
    src.write_text("\n".join(lines) + "\n")
    schema = [{"name": "id", "type": "long"}, {"name": "sepal_length", "type": "double"}]
    out_schema = [
        {"name": "prediction", "type": "string"},
        {"name": "bad", "type": "boolean", "nullable": True},
    ]
    dead = tmp_path / "dead.jsonl"
    # the output schema says `bad` must be a string when present: record 1001 violates it
    out_schema[1] = {"name": "bad", "type": "string", "nullable": True}
    config = flow_config(
        file_channel(src, "source", schema=schema),
        file_channel(tmp_path / "out.jsonl", "sink", schema=out_schema),
        service.url,
        deadLetter=file_channel(dead, "sink"),
    )
    run = flows.run(config)
    assert run.returncode == 0, run.log()
    letters = read_jsonl(dead)
    by_step = {d["step"]: d for d in letters}
    assert set(by_step) == {"decode", "schema:input", "schema:output"}
    assert by_step["decode"]["record"] == "{not json"  # the line, without its line ending
    assert by_step["schema:input"]["record"] == {"id": 1000, "sepal_length": "wide"}
    assert "sepal_length" in by_step["schema:input"]["reason"]
    assert by_step["schema:output"]["record"]["id"] == 1001
    assert all(d["flow"] == "classify" for d in letters)
    done = run.event("flow completed")
    assert done["records_in"] == 53 and done["records_failed"] == 3 and done["records_out"] == 50
    assert_invariant(done)
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 50


def test_service_rejects_records_without_dead_letter_channel_counts_them(
    iris: Path, service: ServeModel, flows: FlowLauncher, tmp_path: Path
) -> None:
    src = tmp_path / "in.jsonl"
    rows = [*read_jsonl(iris / "input.jsonl")[:20], {"id": 99, "sepal_length": "x"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = flow_config(
        file_channel(src, "source"),
        file_channel(tmp_path / "out.jsonl", "sink"),
        service.url,
        steps=[
            SCORE_STEP,
            {"type": "filter", "where": [{"field": "prediction", "op": "eq", "value": "setosa"}]},
        ],
    )
    run = flows.run(config)
    assert run.returncode == 0, run.log()
    done = run.event("flow completed")
    assert done["records_failed"] == 1
    assert done["records_filtered"] == sum(
        p != "setosa" for p in expected_predictions(iris, rows[:20])
    )
    assert_invariant(done)
    assert run.event("records failed")["step"] == "score"


def test_shards_split_records_by_ordinal(
    iris: Path, service: ServeModel, flows: FlowLauncher, tmp_path: Path
) -> None:
    """Both shards name the same sink file; each writes its own part of it."""
    ids: list[int] = []
    for index in range(2):
        run = flows.run(
            flow_config(
                file_channel(iris / "input.jsonl", "source"),
                file_channel(tmp_path / "out.jsonl", "sink"),
                service.url,
                shards=2,
            ),
            env={"JOB_COMPLETION_INDEX": str(index)},
        )
        assert run.returncode == 0, run.log()
        got = [r["id"] for r in read_jsonl(tmp_path / f"out-{index:05d}-of-00002.jsonl")]
        assert all(i % 2 == index for i in got)
        ids += got
    assert sorted(ids) == list(range(IRIS_RECORDS))
    assert not (tmp_path / "out.jsonl").exists()


def test_python_step_and_map(
    iris: Path, service: ServeModel, flows: FlowLauncher, tmp_path: Path
) -> None:
    module = tmp_path / "enrich.py"
    module.write_text(
        "def transform(records):\n"
        "    return [dict(r, area=r['petal_length'] * r['petal_width']) for r in records]\n"
    )
    out = tmp_path / "out.jsonl"
    steps = [
        {"type": "python", "name": "enrich", "uri": module.as_uri()},
        SCORE_STEP,
        {"type": "map", "select": ["id", "area", "prediction"], "rename": {"prediction": "cls"}},
    ]
    run = flows.run(
        flow_config(
            file_channel(iris / "input.jsonl", "source"),
            file_channel(out, "sink"),
            service.url,
            steps=steps,
        )
    )
    assert run.returncode == 0, run.log()
    first = read_jsonl(out)[0]
    assert set(first) == {"id", "area", "cls"}
    assert abs(first["area"] - 1.4 * 0.2) < 1e-9


def test_killed_flow_leaves_no_file_at_the_final_path(
    iris: Path, service: ServeModel, flows: FlowLauncher, tmp_path: Path
) -> None:
    slow = tmp_path / "slow.py"
    slow.write_text(
        "import time\n\ndef transform(records):\n    time.sleep(0.3)\n    return records\n"
    )
    out = tmp_path / "out" / "final.jsonl"
    config = flow_config(
        file_channel(iris / "input.jsonl", "source"),
        file_channel(out, "sink"),
        service.url,
        steps=[{"type": "python", "uri": slow.as_uri()}, SCORE_STEP],
        batchSize=10,
        concurrency=1,
    )
    run = flows.start(config, env={"TEKSCORE_PROGRESS_INTERVAL": "0.2"})
    wait_until(
        lambda: any(
            e.get("event") == "flow progress" and e["records_out"] > 0 for e in run.events()
        ),
        what="some records written",
    )
    run.proc.send_signal(signal.SIGKILL)
    run.wait()
    assert not out.exists()
    temps = list(out.parent.glob(".final.jsonl.*.tmp"))
    assert temps  # what was written so far is only in the hidden temp file


def test_v2_infer_protocol_against_the_real_service(
    iris: Path, service: ServeModel, flows: FlowLauncher, tmp_path: Path
) -> None:
    """`protocol: v2` packs records into OIP tensors by the model's metadata (here one 1-D
    input per feature) and turns the output tensors back into fields."""
    records = [
        {"key": r["id"], **{f"x_{f}": r[f] for f in FEATURES}}
        for r in read_jsonl(iris / "input.jsonl")[:50]
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out.jsonl"
    step = {
        **SCORE_STEP,
        "inputs": {f: f"x_{f}" for f in FEATURES},
        "outputs": {"prediction": "label"},
    }
    services = {"iris": {"url": service.url, "protocol": "v2", "models": ["iris"]}}
    run = flows.run(
        flow_config(
            file_channel(src, "source"),
            file_channel(out, "sink"),
            service.url,
            steps=[step],
            services=services,
        )
    )
    assert run.returncode == 0, run.log()
    got = read_jsonl(out)
    originals = [{f: r[f"x_{f}"] for f in FEATURES} for r in records]
    assert [g["label"] for g in got] == expected_predictions(iris, originals)
    assert set(got[0]) == {"key", *(f"x_{f}" for f in FEATURES), "label"}


def test_unreadable_source_fails_the_flow(
    service: ServeModel, flows: FlowLauncher, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.jsonl"
    out = tmp_path / "out.jsonl"
    run = flows.run(
        flow_config(file_channel(missing, "source"), file_channel(out, "sink"), service.url)
    )
    assert run.returncode == 1
    last = run.events()[-1]
    assert last["event"] == "flow failed"
    assert str(missing) in last["reason"] and "does not exist" in last["reason"]
    said = run.termination()
    assert (said["reason"], said["message"]) == ("FlowFailed", last["reason"])
    assert said["records_in"] == 0
    assert not out.exists()
    assert not list(tmp_path.glob(".out.jsonl.*"))


def test_bad_config_exits_2_with_the_field(flows: FlowLauncher) -> None:
    run = flows.run({"name": "x", "mode": "sometimes"})
    assert run.returncode == 2
    last = run.events()[-1]
    assert last["event"] == "flow failed" and "mode" in last["reason"]
    assert run.termination() == {"reason": "InvalidConfig", "message": last["reason"]}
