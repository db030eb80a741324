"""`tekscore baked` end to end: the example's schemas (examples/baked/*.avsc) and file stream
descriptors, the iris model trained into tmp, a real serve-model child started and stopped by the
command, records from slot 0 scored into slot 1; and a clear error for a bad STREAMS value."""

from __future__ import annotations

import json
import os
from pathlib import Path

import joblib
import numpy as np

from tests.scoring_flow.conftest import (
    FEATURES,
    ROOT,
    TEKSCORE,
    FlowLauncher,
    read_jsonl,
    wait_until,
)

EXAMPLE = ROOT / "examples" / "baked"


def descriptor(name: str, path: Path, tmp_path: Path) -> Path:
    """The example's descriptor `name` with its file path moved under tmp."""
    doc = json.loads((EXAMPLE / name).read_text())
    doc["Transport"]["Path"] = str(path)
    out = tmp_path / name
    out.write_text(json.dumps(doc))
    return out


def test_baked_engine_scores_a_file_stream(iris: Path, flows: FlowLauncher, tmp_path: Path) -> None:
    out = tmp_path / "output.jsonl"
    env = {
        "MODEL": str(iris / "model.joblib"),
        "SCHEMAS": f"in:{EXAMPLE / 'in.avsc'};out:{EXAMPLE / 'out.avsc'}",
        "STREAMS": f"0:{descriptor('in.json', iris / 'input.jsonl', tmp_path)};"
        f"1:{descriptor('out.json', out, tmp_path)}",
    }
    run = flows.run({}, env=env, command=[str(TEKSCORE), "baked"])
    assert run.returncode == 0, run.log()
    inputs = read_jsonl(iris / "input.jsonl")
    outputs = read_jsonl(out)
    model = joblib.load(iris / "model.joblib")
    expected = model.predict(np.array([[r[f] for f in FEATURES] for r in inputs]))
    assert [o["id"] for o in outputs] == [r["id"] for r in inputs]
    assert [o["prediction"] for o in outputs] == [str(p) for p in expected]
    assert run.event("flow completed")["records_out"] == len(inputs)
    pid = run.event("engine started")["pid"]

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(gone, timeout=30, what="the serve-model child to be gone")


def test_baked_engine_rejects_incomplete_streams(
    iris: Path, flows: FlowLauncher, tmp_path: Path
) -> None:
    env = {"MODEL": str(iris / "model.joblib"), "STREAMS": "0:/nowhere.json"}
    run = flows.run({}, env=env, command=[str(TEKSCORE), "baked"])
    assert run.returncode == 2
    last = run.events()[-1]
    assert last["event"] == "flow failed"
    assert "STREAMS must give slot 0 (input) and slot 1 (output)" in last["reason"]
