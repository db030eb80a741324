"""Pre-processing step 2: flows' channel names resolve against the IR and the channel registry."""

from __future__ import annotations

import ir
from tests.ir.conftest import FLOW, MODEL, PIPELINE, SINK, SOURCE, doc, issues_of, join, render


def test_channels_are_inlined_into_the_flow_with_absolute_paths(write, tmp_path):
    values = render(write("p.yaml", join(PIPELINE, MODEL, SOURCE, SINK, FLOW))).values
    flow = values["scoringFlows"][0]
    assert flow["source"] == {
        "name": "in",
        "direction": "source",
        "type": "file",
        "format": {"encoding": "jsonl"},
        "config": {"path": str(tmp_path / "in.jsonl")},
    }
    assert flow["sink"]["config"]["path"] == str(tmp_path / "out.jsonl")


def test_a_registry_channel_resolves_against_the_registry_folder(write, tmp_path):
    write("registry/shared-in.yaml", SOURCE.replace("name: in", "name: shared-in"))
    ir_file = write(
        "p.yaml", join(PIPELINE, MODEL, SINK, FLOW.replace("source: in", "source: shared-in"))
    )
    registry = ir.load_registry(tmp_path / "registry")
    flow = render(ir_file, registry=registry).values["scoringFlows"][0]
    assert flow["source"]["config"]["path"] == str(tmp_path / "registry" / "in.jsonl")


def test_the_ir_wins_over_the_registry_for_the_same_name(write, tmp_path):
    write("registry/in.yaml", SOURCE.replace("in.jsonl", "registry.jsonl"))
    ir_file = write("p.yaml", join(PIPELINE, MODEL, SOURCE, SINK, FLOW))
    flow = render(ir_file, registry=ir.load_registry(tmp_path / "registry")).values["scoringFlows"][
        0
    ]
    assert flow["source"]["config"]["path"].endswith("/in.jsonl")


def test_an_unknown_channel_lists_the_known_ones(write):
    path = write(
        "p.yaml", join(PIPELINE, MODEL, SOURCE, SINK, FLOW.replace("sink: out", "sink: nowhere"))
    )
    line = path.read_text().splitlines().index("  sink: nowhere") + 1
    assert issues_of(path) == [
        f"{path}:{line}: spec.sink: unknown data channel 'nowhere'; known: in, out"
    ]


def test_a_channel_used_against_its_direction_is_an_error(write):
    path = write(
        "p.yaml", join(PIPELINE, MODEL, SOURCE, SINK, FLOW.replace("sink: out", "sink: in"))
    )
    [issue] = issues_of(path)
    assert "spec.sink: data channel 'in' is a source" in issue
    assert issue.endswith("sink needs a sink")


def test_the_registry_holds_only_data_channels(write, tmp_path):
    write("registry/m.yaml", MODEL)
    try:
        ir.load_registry(tmp_path / "registry")
    except ir.IRValidationError as exc:
        assert "the channel registry holds DataChannel documents only" in str(exc)
    else:
        raise AssertionError("a Model in the registry was accepted")


def test_inline_pipeline_channels_and_flows_resolve(write, tmp_path):
    pipeline = doc(
        "ScoringPipeline",
        "p",
        """
        models: [m]
        dataChannels:
          - {name: src, direction: source, type: inline, config: {records: [{a: 1}]}}
          - {name: dst, direction: sink, type: discard}
        scoringFlows:
          - {name: f, source: src, sink: dst, steps: [{type: score, model: m}]}
        """,
    )
    values = render(write("p.yaml", join(pipeline, MODEL))).values
    [flow] = values["scoringFlows"]
    assert flow["source"]["config"] == {"records": [{"a": 1}]}
    assert flow["sink"]["type"] == "discard"
