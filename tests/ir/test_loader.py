"""Loading IR text: YAML and JSON, several documents and files, and exact file:line:path errors,
all reported together."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ir
from tests.ir.conftest import FLOW, MINIMAL, doc, join, render


def _issues(*paths: Path) -> list[str]:
    with pytest.raises(ir.IRValidationError) as info:
        ir.load_paths(list(paths))
    return [str(i) for i in info.value.issues]


def test_a_valid_multi_document_file_loads_every_document(write):
    docs = ir.load_paths([write("p.yaml", MINIMAL)])
    assert [(d.kind, d.name) for d in docs] == [
        ("ScoringPipeline", "p"),
        ("Model", "m"),
        ("DataChannel", "in"),
        ("DataChannel", "out"),
        ("ScoringFlow", "f"),
    ]


def test_an_error_deep_inside_a_document_names_its_exact_line(write):
    text = join(
        doc("ScoringPipeline", "p", "models: []"),
        doc(
            "ScoringFlow",
            "f",
            """
            source: in
            sink: out
            steps:
              - type: score
                model: m
              - type: filter
                where:
                  - field: a
                    op: gt
                    value: 1
                  - field: b
                    op: between
            """,
        ),
    )
    path = write("deep.yaml", text)
    lines = text.splitlines()
    expected = next(i for i, line in enumerate(lines, 1) if line.strip() == "op: between")
    assert _issues(path) == [
        f"{path}:{expected}: spec.steps[1].where[1].op: Input should be 'eq', 'ne', 'lt', 'le', "
        "'gt', 'ge', 'in', 'notIn', 'exists' or 'notExists'"
    ]


def test_a_missing_field_points_at_its_parent_and_an_unknown_one_at_itself(write):
    text = doc(
        "DataChannel", "c", "direction: source\ntype: kafka\nconfig:\n  topic: t\n  colour: red"
    )
    path = write("c.yaml", text)
    assert _issues(path) == [
        f"{path}:8: spec.config.bootstrapServers: field required",
        f"{path}:10: spec.config.colour: unknown field (not part of this kind)",
    ]


def test_every_error_of_every_file_is_reported_at_once(write):
    a = write("a.yaml", doc("Model", "Bad_Name", "type: sklearn\nuri: file://m"))
    b = write("b.yaml", doc("Model", "ok", "type: keras\nuri: ftp://x"))
    assert _issues(a, b) == [
        f"{a}:4: metadata.name: must be a DNS-1123 label: lower-case letters, digits and '-', "
        "starting and ending alphanumeric",
        f"{b}:6: spec.type: Input should be 'python', 'sklearn', 'onnx', 'xgboost', "
        "'lightgbm', 'pmml', 'tensorflow' or 'external'",
        f"{b}:7: spec.uri: String should match pattern "
        "'^((file|https?|s3)://|git\\+(https?|ssh|file)://).+'",
    ]


def test_an_unknown_kind_and_a_missing_step_type_are_named(write):
    path = write(
        "k.yaml",
        join(
            "apiVersion: tekscore.dev/v1\nkind: Widget\nmetadata: {name: w}\nspec: {}\n",
            doc("ScoringFlow", "f", "source: a\nsink: b\nsteps:\n  - model: m"),
        ),
    )
    issues = _issues(path)
    assert issues[0].startswith(f"{path}:2: kind: unknown value 'Widget'; expected one of")
    assert issues[1] == f"{path}:14: spec.steps[0].type: field required"


def test_yaml_syntax_errors_and_duplicate_keys_have_lines(write):
    broken = write("broken.yaml", "apiVersion: tekscore.dev/v1\nkind: [unclosed\n")
    dupe = write("dupe.yaml", doc("Model", "m", "type: sklearn\ntype: onnx\nuri: file://m"))
    issues = _issues(broken, dupe)
    assert issues[0].startswith(f"{broken}:3: <document>: not valid YAML/JSON")
    assert f"{dupe}:7: type: duplicate key 'type'" in issues


def test_json_documents_load_with_line_numbers(write):
    body = {
        "apiVersion": "tekscore.dev/v1",
        "kind": "Model",
        "metadata": {"name": "m"},
        "spec": {"type": "sklearn", "uri": "file://m", "sha256": "nothex"},
    }
    path = write("m.json", json.dumps(body, indent=2))
    assert _issues(path) == [
        f"{path}:10: spec.sha256: String should match pattern '^[0-9a-f]{{64}}$'"
    ]


def test_a_folder_is_read_in_sorted_order_and_only_ir_files(write, tmp_path):
    write("ir/b.yaml", FLOW)
    write("ir/a.yaml", MINIMAL.replace(FLOW, "").rstrip("-\n") + "\n")
    write("ir/notes.txt", "not IR")
    docs = ir.load_paths([tmp_path / "ir"])
    assert [Path(d.file).name for d in docs] == ["a.yaml"] * 4 + ["b.yaml"]
    assert render(tmp_path / "ir").pipeline == "p"


def test_text_from_a_request_reports_the_given_file_names(tmp_path):
    with pytest.raises(ir.IRValidationError) as info:
        ir.load_texts({"pipeline.yaml": "kind: Model\n"}, base_dir=tmp_path)
    assert [str(i) for i in info.value.issues] == [
        "pipeline.yaml:1: apiVersion: field required",
        "pipeline.yaml:1: metadata: field required",
        "pipeline.yaml:1: spec: field required",
    ]


def test_objects_from_a_request_report_paths_without_lines(tmp_path):
    with pytest.raises(ir.IRValidationError) as info:
        ir.load_objects([{"apiVersion": "tekscore.dev/v1", "kind": "Model"}], base_dir=tmp_path)
    assert [i.as_dict() for i in info.value.issues] == [
        {"loc": ["metadata"], "msg": "field required", "file": "<request>"},
        {"loc": ["spec"], "msg": "field required", "file": "<request>"},
    ]


def test_avro_and_csv_kafka_channels_need_a_schema(write):
    kafka = "type: kafka\nconfig: {bootstrapServers: 'k:9092', topic: t}"
    for encoding in ("avro", "csv"):
        bare = write(
            f"{encoding}.yaml",
            doc(
                "DataChannel", "c", f"direction: source\n{kafka}\nformat: {{encoding: {encoding}}}"
            ),
        )
        (issue,) = _issues(bare)
        assert issue.endswith(
            f"spec.kafka: {encoding} messages need format.schema: a message carries no field "
            "names (jsonl messages do)"
        )
    typed = "format: {encoding: avro, schema: [{name: x, type: double}]}"
    ir.load_paths(
        [write("typed.yaml", doc("DataChannel", "c", f"direction: sink\n{kafka}\n{typed}"))]
    )


def test_test_data_channels_need_a_server_url_and_a_name(write):
    good = doc(
        "DataChannel",
        "sample",
        "direction: source\ntype: test-data\n"
        "config: {url: 'http://tekscore-test-data.tekscore.svc:8080', name: iris, loop: true}",
    )
    (loaded,) = ir.load_paths([write("ok.yaml", good)])
    assert (loaded.doc.spec.type, loaded.doc.spec.config.name) == ("test-data", "iris")
    bad = join(
        doc(
            "DataChannel",
            "a",
            "direction: sink\ntype: test-data\nconfig: {url: 'tekscore-test-data:8080', name: x}",
        ),
        doc(
            "DataChannel",
            "b",
            "direction: sink\ntype: test-data\n"
            "config: {url: 'http://t:8080', name: Scored.jsonl, loop: true}",
        ),
    )
    issues = _issues(write("bad.yaml", bad))
    assert len(issues) == 2, issues
    assert "config.url" in issues[0] and "should match pattern" in issues[0], issues
    assert "config.name" in issues[1], issues
