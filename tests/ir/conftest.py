"""Helpers for the IR tests: write IR text into files and pre-process it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

import ir

HEAD = "apiVersion: tekscore.dev/v1\n"


def doc(kind: str, name: str, spec: str) -> str:
    """One IR document; `spec` is YAML indented under `spec:`."""
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return f"{HEAD}kind: {kind}\nmetadata:\n  name: {name}\nspec:\n{body}\n"


def join(*docs: str) -> str:
    return "---\n".join(docs)


PIPELINE = doc(
    "ScoringPipeline",
    "p",
    """
    parameters:
      out: {type: string, default: out.jsonl}
      bs: {type: integer, default: 64}
    models: [m]
    """,
)
MODEL = doc("Model", "m", "type: sklearn\nuri: file://model.joblib")
SOURCE = doc("DataChannel", "in", "direction: source\ntype: file\nconfig: {path: in.jsonl}")
SINK = doc("DataChannel", "out", "direction: sink\ntype: file\nconfig: {path: '${out}'}")
FLOW = doc(
    "ScoringFlow",
    "f",
    """
    source: in
    sink: out
    batchSize: ${bs}
    steps:
      - {type: score, model: m}
    """,
)
MINIMAL = join(PIPELINE, MODEL, SOURCE, SINK, FLOW)


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """write(name, text) -> path of a new IR file in tmp_path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write


def render(*paths: Path, **kwargs: Any) -> ir.Rendered:
    return ir.preprocess(ir.load_paths(list(paths)), **kwargs)


def issues_of(*paths: Path, parameters: Mapping[str, Any] | None = None) -> list[str]:
    """The problems pre-processing reports, as printed lines."""
    with pytest.raises(ir.IRValidationError) as info:
        render(*paths, parameters=parameters)
    return [str(i) for i in info.value.issues]
