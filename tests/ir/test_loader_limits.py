"""What the IR loader refuses before walking a document: alias expansion past the budget,
recursive aliases, complex keys, nesting past the depth limit, `!!binary`, and more documents
than a request may hold; and that ordinary anchors and depths still load."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

import ir
from ir.limits import MAX_ALIAS_NODES, MAX_DEPTH, Limit, too_deep
from tests.attacks import (
    BINARY,
    COMPLEX_KEY,
    RECURSIVE_ALIAS,
    alias_bomb,
    inline_pipeline,
    nested,
    nested_record_yaml,
)


def _messages(files: dict[str, str], **kwargs: object) -> list[str]:
    with pytest.raises(ir.IRValidationError) as info:
        ir.load_texts(files, base_dir=Path("/"), **kwargs)  # type: ignore[arg-type]
    return [str(i) for i in info.value.issues]


def test_the_alias_bomb_is_refused_without_expanding_it():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    messages = _messages({"bomb.yaml": alias_bomb()})
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert messages == [
        "bomb.yaml:1: <document>: YAML aliases expand this document by 490329036 nodes, "
        f"more than the {MAX_ALIAS_NODES} allowed: refused"
    ]
    assert grown_kib < 50_000, f"peak memory grew by {grown_kib} KiB while refusing 400 bytes"


def test_aliases_within_the_budget_load_like_the_text_they_stand_for():
    shared = (
        "apiVersion: tekscore.dev/v1\nkind: ScoringPipeline\nmetadata: {name: p}\nspec:\n"
        "  dataChannels:\n"
        "    - {name: src, direction: source, type: inline, config: {records: [&r {a: 1}, *r]}}\n"
        "    - {name: out, direction: sink, type: discard}\n"
        "  scoringFlows:\n"
        "    - {name: f, mode: batch, source: src, sink: out}\n"
    )
    docs = ir.load_texts({"p.yaml": shared}, base_dir=Path("/"))
    records = docs[0].doc.spec.data_channels[0].config.records
    assert records == [{"a": 1}, {"a": 1}]


def test_a_bomb_just_past_the_budget_is_refused_and_one_below_loads():
    # width ** levels strings plus the lists: 10**5 added nodes is over, 10**4 is under
    assert "more than the 100000 allowed" in _messages({"b.yaml": alias_bomb(5, 10)})[0]
    data, issues = ir.loader.parse_text(alias_bomb(4, 10), file="b.yaml")
    assert issues == [] and len(data[0][0]["d"]) == 10


def test_a_recursive_alias_is_refused_with_its_line():
    assert _messages({"r.yaml": RECURSIVE_ALIAS}) == [
        "r.yaml:1: <document>: a YAML alias inside its own anchor (a recursive structure)"
    ]


def test_a_complex_mapping_key_is_refused_with_its_line():
    assert _messages({"k.yaml": "x: 1\n" + COMPLEX_KEY}) == [
        "k.yaml:2: <document>: a mapping key must be a plain value, not a list or a mapping"
    ]


def test_binary_values_are_refused_ir_values_are_json():
    (message,) = _messages({"b.yaml": BINARY})
    assert "!!binary values are not allowed" in message


def test_nesting_up_to_the_limit_loads_and_one_level_more_is_refused():
    # the record sits 6 levels down: document, spec, dataChannels, [0], config, records
    ok = ir.load_texts({"p.yaml": nested_record_yaml(MAX_DEPTH - 6)}, base_dir=Path("/"))
    assert ok[0].kind == "ScoringPipeline"
    assert _messages({"p.yaml": nested_record_yaml(MAX_DEPTH - 5)}) == [
        f"p.yaml:6: <document>: nested more than {MAX_DEPTH} levels deep: refused"
    ]


def test_json_documents_nested_too_deep_are_refused_before_validation():
    with pytest.raises(ir.IRValidationError) as info:
        ir.load_objects([{"kind": "Model"}, nested(MAX_DEPTH + 1)], base_dir=Path("/"))
    assert [str(i) for i in info.value.issues] == [
        f"<request>: [1]: nested more than {MAX_DEPTH} levels deep: refused"
    ]


def test_too_deep_answers_for_thousands_of_levels_without_recursion():
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    assert too_deep(deep, 64)
    assert not too_deep(nested(64), 64)
    assert too_deep(nested(65), 64)


def test_more_documents_than_the_limit_is_one_issue_naming_the_setting():
    limit = Limit(3, "TEKSCORE_MAX_DOCUMENTS")
    one = inline_pipeline()
    files = {"a.yaml": "---\n".join([one, one]), "b.yaml": "---\n".join([one, one])}
    assert _messages(files, max_documents=limit) == [
        "b.yaml: <document>: IR documents in one request: more than the limit of 3 "
        "(setting TEKSCORE_MAX_DOCUMENTS)"
    ]
    with pytest.raises(ir.IRValidationError) as info:
        ir.load_objects([{}] * 4, base_dir=Path("/"), max_documents=limit)
    assert "IR documents in one request: 4, more than the limit of 3" in str(info.value)


def test_the_documents_limit_stops_reading_a_file_early():
    # a million empty documents: parsing stops after the limit (a whole read takes seconds)
    text = "---\n{}\n" * 1_000_000
    data, issues, read = ir.loader._parse_text(text, file="many.yaml", stop_after=10)
    assert read == 11 and len(data) == 10 and issues == []
