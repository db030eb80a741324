"""Pre-processing step 4: merging documents into one values tree, conflicts, which documents
are members of the pipeline."""

from __future__ import annotations

from tests.ir.conftest import (
    FLOW,
    MINIMAL,
    MODEL,
    PIPELINE,
    SINK,
    SOURCE,
    doc,
    issues_of,
    join,
    render,
)


def test_the_same_definition_in_two_files_is_harmless(write):
    a = write("a.yaml", MINIMAL)
    b = write("b.yaml", MODEL)
    assert render(a, b).values == render(a).values


def test_a_name_defined_twice_differently_names_both_places(write):
    a = write("a.yaml", MINIMAL)
    b = write("b.yaml", MODEL.replace("sklearn", "onnx"))
    first = next(i for i, t in enumerate(a.read_text().splitlines(), 1) if t == "  name: m") - 1
    [issue] = issues_of(a, b)
    assert issue.startswith(f"{b}:5: spec: Model 'm' is defined twice with different content")
    assert f"(first at {a}:{first + 2}, again at {b}:5)" in issue


def test_a_pipeline_needs_exactly_one_pipeline_document_and_a_flow(write):
    no_pipeline = write("a.yaml", join(MODEL, SOURCE))
    assert issues_of(no_pipeline) == [
        f"{no_pipeline}: kind: the IR has no ScoringPipeline document"
    ]
    no_flow = write("b.yaml", join(PIPELINE, MODEL))
    assert issues_of(no_flow) == [f"{no_flow}:5: spec: a pipeline needs at least one scoring flow"]
    two = write("c.yaml", join(MINIMAL, PIPELINE.replace("name: p", "name: q")))
    [issue] = issues_of(two)
    assert "kind: a second ScoringPipeline; the IR already has 'p'" in issue


def test_listed_members_only_and_unlisted_documents_stay_out(write):
    other = FLOW.replace("name: f", "name: g")
    values = render(
        write(
            "p.yaml",
            join(MINIMAL.replace("models: [m]", "models: [m]\n  scoringFlows: [f]"), other),
        )
    ).values
    assert [f["name"] for f in values["scoringFlows"]] == ["f"]
    values = render(write("q.yaml", join(MINIMAL, other))).values
    assert [f["name"] for f in values["scoringFlows"]] == ["f", "g"]


def test_a_listed_name_that_no_document_defines_is_an_error(write):
    path = write("p.yaml", MINIMAL.replace("models: [m]", "models: [m, nope]"))
    [issue] = issues_of(path)
    assert issue.endswith("spec.models[1]: unknown Model 'nope'; known: m")


def test_an_inline_secret_value_is_refused(write):
    kafka = doc(
        "DataChannel",
        "out",
        "direction: sink\ntype: kafka\nconfig: {bootstrapServers: 'k:9092', topic: t, password: hunter2}",
    )
    [issue] = issues_of(write("p.yaml", MINIMAL.replace(SINK, kafka)))
    assert "spec.config.password" in issue
    assert "hunter2" not in issue.split("password:")[0]
