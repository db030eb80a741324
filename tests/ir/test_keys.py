"""Kafka sink message keys in the IR: a field name or a template of fields; malformed templates,
keys on sources and keys naming fields outside the sink's schema are IR errors with their line."""

from __future__ import annotations

import pytest

from ir.keys import KeyTemplate
from tests.ir.conftest import FLOW, MODEL, PIPELINE, SOURCE, doc, issues_of, join, render


def kafka(direction: str, key: str, schema: str | None = None) -> str:
    spec = [
        f"direction: {direction}",
        "type: kafka",
        "config:",
        "  bootstrapServers: 127.0.0.1:9092",
        "  topic: scored",
        f"  key: {key}",
    ]
    if schema:
        spec += ["format:", f"  schema: {schema}"]
    return doc("DataChannel", "out", "\n".join(spec))


def test_a_field_name_and_a_template_render_from_the_record() -> None:
    record = {"customer": "c-7", "region": "eu", "n": 3, "ok": True, "x": 1.5}
    assert KeyTemplate.parse("customer").render(record) == "c-7"
    template = KeyTemplate.parse("{region}/{customer}:{n}:{ok}:{x}")
    assert template.fields == ("region", "customer", "n", "ok", "x")
    assert template.render(record) == "eu/c-7:3:true:1.5"
    assert KeyTemplate.parse("{{{region}}}").render(record) == "{eu}"  # literal braces


def test_missing_names_absent_and_null_fields() -> None:
    template = KeyTemplate.parse("{region}-{customer}")
    assert template.missing({"region": "eu", "customer": None}) == ["customer"]
    assert template.missing({}) == ["region", "customer"]
    assert template.missing({"region": "eu", "customer": 0}) == []


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{", "expected a field name"),
        ("{}", "expected a field name"),
        ("a}", "'}' without '{'"),
        ("{{only literal}}", "names no field"),
        ("", "needs a field name"),
    ],
)
def test_malformed_templates_say_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        KeyTemplate.parse(text)


def test_the_key_reaches_the_flow_config(write) -> None:
    sink = kafka("sink", "'{region}/{customer}'")
    values = render(write("p.yaml", join(PIPELINE, MODEL, SOURCE, sink, FLOW))).values
    assert values["scoringFlows"][0]["sink"]["config"]["key"] == "{region}/{customer}"


def test_a_key_on_a_source_a_bad_template_and_an_unknown_field_are_errors(write) -> None:
    source = kafka("source", "customer").replace("name: out", "name: in")
    bad = kafka("sink", "'{customer'")
    path = write("p.yaml", join(PIPELINE, MODEL, source, bad, FLOW))
    lines = path.read_text().splitlines()
    issues = issues_of(path)
    assert len(issues) == 2, issues
    source_line = lines.index("  name: in") + 1
    assert (
        f"{path}:{source_line + 1}: spec.kafka: config.key is for sinks: a source reads the keys "
        "it is given" in issues
    )
    key_line = lines.index("    key: '{customer'") + 1
    assert any(
        i.startswith(f"{path}:{key_line}: spec.config.key:") and "expected a field name" in i
        for i in issues
    ), issues


def test_a_key_field_must_be_in_the_sink_schema(write) -> None:
    sink = kafka("sink", "'{customer}-{region}'", schema="[{name: customer, type: string}]")
    path = write("p.yaml", join(PIPELINE, MODEL, SOURCE, sink, FLOW))
    [issue] = issues_of(path)
    assert issue.endswith("config.key names 'region', not in format.schema (customer)"), issue
