"""Pre-processing step 3: `${name}` parameters in flows, typed, with defaults, overrides and
escapes, and never evaluated."""

from __future__ import annotations

import pytest

from ir.parameters import coerce, substitute
from tests.ir.conftest import MINIMAL, doc, issues_of, join, render


def test_whole_string_references_keep_the_parameter_type(write):
    values = render(write("p.yaml", MINIMAL), parameters={"bs": "512"}).values
    assert values["scoringFlows"][0]["batchSize"] == 512
    assert values["job"]["parameters"] == {"bs": 512, "out": "out.jsonl"}


def test_defaults_apply_when_no_override_is_given(write, tmp_path):
    flow = render(write("p.yaml", MINIMAL)).values["scoringFlows"][0]
    assert flow["batchSize"] == 64
    assert flow["sink"]["config"]["path"] == str(tmp_path / "out.jsonl")


def test_an_absolute_override_of_a_path_stays_absolute(write):
    flow = render(write("p.yaml", MINIMAL), parameters={"out": "/data/x.jsonl"}).values[
        "scoringFlows"
    ][0]
    assert flow["sink"]["config"]["path"] == "/data/x.jsonl"


@pytest.mark.parametrize(
    ("text", "params", "expected"),
    [
        ("${a}", {"a": 3}, 3),
        ("${a}", {"a": True}, True),
        ("x-${a}-y", {"a": 3}, "x-3-y"),
        ("${a}${b}", {"a": "p", "b": False}, "pfalse"),
        ("$${a}", {"a": 3}, "${a}"),
        ("cost: $5 and ${a}", {"a": 1.5}, "cost: $5 and 1.5"),
        ("no references", {}, "no references"),
    ],
)
def test_substitution(text, params, expected):
    assert substitute(text, params) == (expected, [])


def test_references_are_data_never_code():
    out, unknown = substitute("${__import__('os').system('true')}", {})
    assert (out, unknown) == ("${__import__('os').system('true')}", [])
    value = "{{ .Values.secret }} ${a}"
    assert substitute(value, {"a": "{{ x }}"}) == ("{{ .Values.secret }} {{ x }}", [])


@pytest.mark.parametrize(
    ("value", "type_", "expected"),
    [
        ("12", "integer", 12),
        (12.0, "integer", 12),
        ("1.5", "number", 1.5),
        (2, "number", 2.0),
        ("yes", "boolean", True),
        ("False", "boolean", False),
        ("abc", "string", "abc"),
    ],
)
def test_coercion_by_declared_type(value, type_, expected):
    assert coerce(value, type_) == expected


@pytest.mark.parametrize(
    ("value", "type_"),
    [
        ("1.5", "integer"),
        (True, "integer"),
        ("abc", "number"),
        ("nan", "number"),
        ("maybe", "boolean"),
        (3, "string"),
    ],
)
def test_ill_typed_values_are_refused(value, type_):
    with pytest.raises(ValueError, match="expected"):
        coerce(value, type_)


def test_unknown_missing_and_ill_typed_parameters_are_all_reported(write):
    pipeline = doc(
        "ScoringPipeline",
        "p",
        """
        parameters:
          out: {type: string, default: out.jsonl}
          bs: {type: integer, default: 64}
          needed: {type: string}
          flag: {type: boolean, default: notabool}
        models: [m]
        """,
    )
    text = MINIMAL.replace(MINIMAL.split("---\n")[0], pipeline).replace(
        "batchSize: ${bs}", "batchSize: ${bs}\n  name2: x"
    )
    text = text.replace("name2: x", "concurrency: ${nope}")
    path = write("p.yaml", text)
    lines = path.read_text().splitlines()

    def line(fragment: str) -> int:
        return next(i for i, text in enumerate(lines, 1) if fragment in text)

    assert issues_of(path, parameters={"bs": "many", "typo": "1"}) == [
        f"{path}:{line('needed:')}: spec.parameters.needed: required parameter has no value: "
        "give it with -p or in the request",
        f"{path}:{line('flag:')}: spec.parameters.flag.default: expected a boolean (true/false), got 'notabool'",
        f"{path}:{line('concurrency:')}: spec.concurrency: unknown parameter ${{nope}}; declared: bs, flag, needed, out",
        "<parameters>: bs: expected an integer, got 'many'",
        "<parameters>: typo: unknown parameter; declared: bs, flag, needed, out",
    ]


def test_a_reference_inside_an_inlined_channel_reports_the_channel_line(write):
    path = write("p.yaml", MINIMAL.replace("path: '${out}'", "path: '${outt}'"))
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "${outt}" in t)
    assert issues_of(path) == [
        f"{path}:{line}: spec.config.path: unknown parameter ${{outt}}; declared: bs, out"
    ]


def test_a_typed_field_given_a_string_parameter_is_an_error_at_that_field(write):
    text = MINIMAL.replace("bs: {type: integer, default: 64}", "bs: {type: string, default: lots}")
    path = write("p.yaml", text)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "batchSize:" in t)
    assert issues_of(path) == [f"{path}:{line}: spec.batchSize: Input should be a valid integer"]


def test_inline_records_are_data_and_not_substituted(write):
    pipeline = doc(
        "ScoringPipeline",
        "p",
        """
        models: [m]
        dataChannels:
          - {name: src, direction: source, type: inline, config: {records: [{note: "${literal}"}]}}
          - {name: dst, direction: sink, type: discard}
        scoringFlows:
          - {name: f, source: src, sink: dst, steps: [{type: score, model: m}]}
        """,
    )
    model = doc("Model", "m", "type: sklearn\nuri: file://model.joblib")
    flow = render(write("p.yaml", join(pipeline, model))).values["scoringFlows"][0]
    assert flow["source"]["config"]["records"] == [{"note": "${literal}"}]
