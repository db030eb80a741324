"""Hostile inputs, written once for the tests that send them (docs/security.md lists them).

Pure data: IR text and JSON bodies that used to cost the server unbounded memory or a 500.
"""

from __future__ import annotations

import itertools
import json


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """YAML whose last key expands to `width ** levels` strings ("billion laughs"): 9 levels of
    9 aliases are about 400 bytes for 387 million nodes."""
    names = [chr(ord("a") + i) for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['lol'] * width)}]"]
    for prev, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * width)}]")
    return "\n".join(lines) + "\n"


COMPLEX_KEY = "? [a, b]\n: c\n"
RECURSIVE_ALIAS = "a: &r [*r]\n"
BINARY = "a: !!binary /w==\n"  # one byte, 0xff: not UTF-8


def nested(depth: int) -> dict[str, object]:
    """A JSON object nested `depth` levels deep."""
    value: dict[str, object] = {"a": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def inline_pipeline(record: str = "{a: 1}", *, flows: int = 1, shards: int = 1) -> str:
    """A valid pipeline with an inline source holding `record` (YAML text) and `flows` batch
    flows of `shards` shards each."""
    flow_lines = "\n".join(
        f"    - {{name: f{i}, mode: batch, source: src, sink: out, shards: {shards}, "
        "steps: [{type: map, rename: {a: b}}]}"
        for i in range(flows)
    )
    return f"""\
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {{name: p}}
spec:
  dataChannels:
    - {{name: src, direction: source, type: inline, config: {{records: [{record}]}}}}
    - {{name: out, direction: sink, type: discard}}
  scoringFlows:
{flow_lines}
"""


def nested_record_yaml(depth: int) -> str:
    """`inline_pipeline` with a record nested `depth` levels deep (JSON is YAML)."""
    return inline_pipeline(json.dumps(nested(depth)))


def one_flow(
    source: str = "{type: inline, config: {records: [{a: 1}]}}",
    sink: str = "{type: discard}",
    *,
    dead_letter: str | None = None,
    steps: str = "[{type: map, rename: {a: b}}]",
    mode: str = "batch",
    name: str = "p",
    models: str = "",
) -> str:
    """A pipeline of one flow `f` from `src` to `out` (and `dead`); each channel is a flow-style
    mapping without its name and direction, `models` the lines of an inline models list. The
    channels are on lines 6, 7 (and 8), after `models`."""
    channels = [
        f"    - {{name: src, direction: source, {source[1:]}",
        f"    - {{name: out, direction: sink, {sink[1:]}",
    ]
    if dead_letter is not None:
        channels.append(f"    - {{name: dead, direction: sink, {dead_letter[1:]}")
    dead = ", deadLetter: dead" if dead_letter is not None else ""
    return (
        "apiVersion: tekscore.dev/v1\n"
        "kind: ScoringPipeline\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        + (f"  models:\n{models}" if models else "")
        + "  dataChannels:\n"
        + "\n".join(channels)
        + "\n  scoringFlows:\n"
        + f"    - {{name: f, mode: {mode}, source: src, sink: out{dead}, steps: {steps}}}\n"
    )
