"""Channel schemas of every Avro type family: accepted by the IR (a bad type is an error at its
file and line), checked by the flow with the one wording, written and read back by the avro
codecs (container files and Kafka messages), and a file that is not Avro refused clearly."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

import ir
from ir.errors import IRValidationError
from ir.types import FieldSpec
from scoring_flow.codecs import Encoder, MessageCodec, decode
from scoring_flow.schema_check import violation

FIELDS: list[dict[str, Any]] = [
    {"name": "id", "type": {"type": "long"}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "suit", "type": {"type": "enum", "name": "Suit", "symbols": ["SPADES", "HEARTS"]}},
    {"name": "tag", "type": {"type": "fixed", "name": "Tag", "size": 2}},
    {"name": "scores", "type": {"type": "array", "items": "double"}},
    {"name": "attrs", "type": {"type": "map", "values": "string"}},
    {"name": "maybe", "type": ["null", "int"]},
    {
        "name": "where",
        "type": {
            "type": "record",
            "name": "Where",
            "fields": [{"name": "city", "type": "string"}, {"name": "lat", "type": "double"}],
        },
    },
    {"name": "blob", "type": "bytes", "nullable": True},
]
SCHEMA = [FieldSpec.model_validate(f) for f in FIELDS]
RECORDS = [
    {
        "id": 1,
        "at": 1_700_000_000_000,
        "suit": "HEARTS",
        "tag": "ab",
        "scores": [0.5, 1.5],
        "attrs": {"k": "v"},
        "maybe": None,
        "where": {"city": "Oslo", "lat": 59.9},
        "blob": "\x00\xff",
    },
    {
        "id": 2,
        "at": 0,
        "suit": "SPADES",
        "tag": "cd",
        "scores": [],
        "attrs": {},
        "maybe": 7,
        "where": {"city": "Lima", "lat": -12.0},
        "blob": None,
    },
]


def channel_doc(schema: list[dict[str, Any]]) -> str:
    import yaml

    return yaml.safe_dump(
        {
            "apiVersion": "tekscore.dev/v1",
            "kind": "DataChannel",
            "metadata": {"name": "events"},
            "spec": {
                "direction": "source",
                "type": "file",
                "format": {"encoding": "avro", "schema": schema},
                "config": {"path": "events.avro"},
            },
        },
        sort_keys=False,
    )


def test_the_ir_takes_every_avro_type_family(tmp_path: Path) -> None:
    path = tmp_path / "channel.yaml"
    path.write_text(channel_doc(FIELDS))
    (doc,) = ir.load_paths([path])
    fields = doc.doc.spec.format.schema_
    assert fields[0].type == "long"  # the long form of a primitive is written short
    assert fields[2].type["symbols"] == ["SPADES", "HEARTS"]


def test_a_bad_avro_type_is_an_ir_error_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "channel.yaml"
    path.write_text(channel_doc([{"name": "a", "type": "long"}, {"name": "b", "type": "Nope"}]))
    with pytest.raises(IRValidationError) as info:
        ir.load_paths([path])
    (issue,) = info.value.issues
    assert issue.line is not None and issue.loc == ("spec", "format", "schema")
    assert "field 'b': unknown type 'Nope'" in issue.msg


def test_a_model_schema_takes_primitive_types_only(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "model.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "tekscore.dev/v1",
                "kind": "Model",
                "metadata": {"name": "m"},
                "spec": {
                    "type": "python",
                    "uri": "file:///m.py",
                    "schema": {
                        "input": [{"name": "xs", "type": {"type": "array", "items": "int"}}]
                    },
                },
            }
        )
    )
    with pytest.raises(IRValidationError, match="a model's schema takes the primitive types"):
        ir.load_paths([path])


def test_the_flow_checks_every_family_with_the_one_wording() -> None:
    assert [violation(r, SCHEMA) for r in RECORDS] == [None, None]
    bad = {**RECORDS[0], "scores": [1.0, "high"], "where": {"city": "Oslo"}}
    assert violation(bad, SCHEMA) == (
        "field 'scores[1]': expected double, got string; field 'where.lat' is missing"
    )


def test_avro_container_files_carry_every_family() -> None:
    enc = Encoder("avro", SCHEMA)
    data = enc.begin() + enc.encode(RECORDS).data + enc.end()
    stream = io.BufferedReader(io.BytesIO(data))
    assert list(decode("avro", stream, SCHEMA)) == RECORDS


def test_avro_kafka_messages_carry_every_family() -> None:
    codec = MessageCodec("avro", SCHEMA)
    assert [codec.decode(codec.encode(r)) for r in RECORDS] == RECORDS


def test_a_json_file_read_as_avro_is_refused_clearly() -> None:
    stream = io.BufferedReader(io.BytesIO(b'{"id": 1}\n{"id": 2}\n'))
    with pytest.raises(ValueError, match="not an Avro object container file") as info:
        list(decode("avro", stream, SCHEMA))
    assert 'b\'{"id": 1}' in str(info.value)
