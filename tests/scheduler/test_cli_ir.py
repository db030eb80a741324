"""`tekscore validate`, `render` and `schema` as a user runs them: real subprocesses, exit codes
and the exact error lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import IRIS

TEKSCORE = [sys.executable, "-c", "from scheduler.cli.main import main; main()"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TEKSCORE, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_validate_a_valid_pipeline_prints_one_summary_line(iris_dir):
    result = run("validate", str(IRIS / "model.yaml"), str(IRIS / "batch.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = result.stdout.splitlines()
    assert line.startswith(
        "valid: pipeline iris-batch: 1 scoring service(s), 1 scoring flow(s) (1 batch, 0 streaming)"
    )


def test_validate_an_invalid_pipeline_prints_file_line_path_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (IRIS / "batch.yaml").read_text().replace("batchSize: ${batchSize}", "batchSize: -3")
    )
    result = run("validate", str(IRIS / "model.yaml"), str(bad))
    assert result.returncode == 1
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), 1) if "batchSize: -3" in t)
    assert result.stdout.splitlines() == [
        f"{bad}:{line}: spec.batchSize: Input should be greater than or equal to 1"
    ]


def test_render_writes_the_values_file_with_overrides(tmp_path, iris_dir):
    out = tmp_path / "values.yaml"
    result = run(
        "render",
        str(IRIS / "model.yaml"),
        str(IRIS / "batch.yaml"),
        "-p",
        "batchSize=512",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    values = yaml.safe_load(out.read_text())
    assert values["scoringFlows"][0]["batchSize"] == 512
    assert not list(tmp_path.glob(".values.yaml.*")), "a temporary file was left behind"
    stdout = run(
        "render", str(IRIS / "model.yaml"), str(IRIS / "batch.yaml"), "-p", "batchSize=512"
    )
    assert stdout.stdout == out.read_text()


def test_render_refuses_a_malformed_or_unknown_parameter():
    paths = [str(IRIS / "model.yaml"), str(IRIS / "batch.yaml")]
    result = run("render", *paths, "-p", "nobody")
    assert result.returncode == 2
    assert "expected NAME=VALUE" in result.stderr
    result = run("render", *paths, "-p", "colour=red")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "<parameters>: colour: unknown parameter; declared: batchSize, input, output"
    ]


def test_render_with_a_channel_registry_and_globals(tmp_path, iris_dir):
    registry = tmp_path / "channels"
    registry.mkdir()
    (registry / "archive.yaml").write_text(
        "apiVersion: tekscore.dev/v1\nkind: DataChannel\nmetadata: {name: iris-scored}\n"
        "spec: {direction: sink, type: discard}\n"
    )
    pipeline = tmp_path / "batch.yaml"
    text = (IRIS / "batch.yaml").read_text()
    start = text.index("kind: DataChannel\nmetadata:\n  name: iris-scored")
    end = text.index("---", start)
    pipeline.write_text(text[: text.rindex("---", 0, start)] + text[end:])
    (tmp_path / "input.jsonl").write_text("")
    globals_file = tmp_path / "globals.yaml"
    globals_file.write_text("callbackUrl: http://127.0.0.1:8000\n")
    result = run(
        "render",
        str(IRIS / "model.yaml"),
        str(pipeline),
        "--channels",
        str(registry),
        "--globals",
        str(globals_file),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    values = yaml.safe_load(result.stdout)
    assert values["scoringFlows"][0]["sink"]["type"] == "discard"
    assert values["global"]["callbackUrl"] == "http://127.0.0.1:8000"


def test_schema_prints_json_schema_for_the_ir_a_kind_and_the_values():
    everything = json.loads(run("schema").stdout)
    assert everything["$schema"].endswith("2020-12/schema")
    model = json.loads(run("schema", "Model").stdout)
    assert model["properties"]["kind"]["const"] == "Model"
    values = json.loads(run("schema", "--values").stdout)
    assert set(values["required"]) == {"job"}
    result = run("schema", "Widget")
    assert result.returncode == 2
    assert "unknown kind 'Widget'" in result.stderr
