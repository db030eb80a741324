"""The values file as a whole: deterministic bytes, the content hash, globals applied last,
the iris golden file and the JSON Schema exports."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

import ir
from tests.conftest import IRIS
from tests.ir.conftest import FLOW, MINIMAL, MODEL, PIPELINE, SINK, SOURCE, join, render

GOLDEN = Path(__file__).parent / "golden" / "iris-batch.values.yaml"


def test_rendering_twice_gives_the_same_bytes(write):
    path = write("p.yaml", MINIMAL)
    assert render(path).text == render(path).text


def test_the_order_of_files_and_documents_does_not_matter(write):
    a = write("a.yaml", join(PIPELINE, MODEL))
    b = write("b.yaml", join(FLOW, SINK, SOURCE))
    c = write("c.yaml", join(SOURCE, FLOW, PIPELINE, SINK, MODEL))
    assert render(a, b).text == render(b, a).text == render(c).text


def test_the_content_hash_covers_the_content(write):
    path = write("p.yaml", MINIMAL)
    first = render(path)
    assert first.content_hash == ir.content_hash(first.values)
    assert render(path, parameters={"bs": 65}).content_hash != first.content_hash
    assert yaml.safe_load(first.text) == first.values


def test_globals_are_applied_last_and_cannot_come_from_the_job(write, tmp_path):
    globals_file = write(
        "globals.yaml",
        "callbackUrl: http://scheduler:8000\nimage: {registry: reg.local, tag: '1.2'}\nlogLevel: debug\n",
    )
    values = render(write("p.yaml", MINIMAL), globals_=ir.load_globals(globals_file)).values
    assert values["global"]["callbackUrl"] == "http://scheduler:8000"
    assert values["global"]["image"] == {
        "registry": "reg.local",
        "repository": "tekscore/tekscore",
        "tag": "1.2",
        "pullPolicy": "IfNotPresent",
    }
    job_tries = ir.apply_globals({"global": {"callbackUrl": "http://evil"}}, ir.GlobalValues())
    assert "callbackUrl" not in job_tries["global"]


def test_a_bad_globals_file_reports_file_and_line(write):
    path = write("globals.yaml", "logLevel: loud\nimage:\n  tag: 1\n  colour: red\n")
    with pytest.raises(ir.IRValidationError) as info:
        ir.load_globals(path)
    assert [str(i) for i in info.value.issues] == [
        f"{path}:1: logLevel: Input should be 'debug', 'info', 'warning' or 'error'",
        f"{path}:3: image.tag: Input should be a valid string",
        f"{path}:4: image.colour: Extra inputs are not permitted",
    ]


def _iris_values_portable(iris_dir: Path) -> str:
    rendered = ir.preprocess(ir.load_paths([iris_dir / "model.yaml", iris_dir / "batch.yaml"]))
    text = rendered.text.replace(str(iris_dir), "<examples/iris>")
    # the hash covers the absolute paths of this checkout: masked here, checked elsewhere
    return re.sub(r"contentHash: [0-9a-f]{64}", "contentHash: <sha256>", text)


def test_the_iris_values_file_matches_the_golden_file(iris_dir):
    text = _iris_values_portable(iris_dir)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8"), (
        "run with UPDATE_GOLDEN=1 after a deliberate change"
    )


def test_both_iris_pipelines_render_and_validate_against_the_values_schema(iris_dir):
    schema = ir.values_json_schema()
    for pipeline in ("batch.yaml", "streaming.yaml"):
        values = ir.preprocess(ir.load_paths([IRIS / "model.yaml", IRIS / pipeline])).values
        jsonschema.validate(values, schema)


def test_the_ir_json_schema_accepts_the_examples_and_rejects_unknown_fields():
    schema = ir.ir_json_schema()
    for path in sorted(IRIS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            jsonschema.validate(document, schema)
    bad = {
        "apiVersion": "tekscore.dev/v1",
        "kind": "Model",
        "metadata": {"name": "m"},
        "spec": {"type": "sklearn", "uri": "file://m", "colour": "red"},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, ir.ir_json_schema("Model"))
    assert set(json.dumps(ir.ir_json_schema("ScoringFlow")).split('"')) >= {
        "batchSize",
        "deadLetter",
    }
