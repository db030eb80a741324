"""`common.avro`: field lists of every Avro type family parsed by fastavro, records checked
against them in the one wording (`field 'x': expected double, got string`), the fast
primitive predicates agreeing with fastavro on every JSON value, and JSON records turned into
Avro data and back (the Avro JSON encoding)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from common.avro import (
    DatumConverter,
    JsonConverter,
    RecordCheck,
    SchemaError,
    label,
    parse_fields,
    parse_record_schema,
    record_schema,
)
from common.fields import TYPE_CHECKS


@dataclass(frozen=True)
class F:
    name: str
    type: Any
    nullable: bool = False


ADDRESS = {
    "type": "record",
    "name": "Address",
    "fields": [{"name": "zip", "type": "string"}, {"name": "floor", "type": ["null", "int"]}],
}
EVERY_FAMILY = [
    F("id", "long"),
    F("x", {"type": "double"}),
    F("ts", {"type": "long", "logicalType": "timestamp-millis"}),
    F("day", {"type": "int", "logicalType": "date"}),
    F("price", {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}),
    F("suit", {"type": "enum", "name": "Suit", "symbols": ["SPADES", "HEARTS"]}),
    F("digest", {"type": "fixed", "name": "Digest", "size": 4}),
    F("tags", {"type": "array", "items": "string"}),
    F("weights", {"type": "map", "values": "double"}),
    F("either", ["null", "string", "int"]),
    F("home", ADDRESS),
    F("work", "Address", nullable=True),
    F("raw", "bytes"),
]
GOOD = {
    "id": 1,
    "x": 2,
    "ts": 1_700_000_000_000,
    "day": 19_000,
    "price": "\x01\x02",
    "suit": "SPADES",
    "digest": "abcd",
    "tags": ["a", "b"],
    "weights": {"a": 0.5},
    "either": 3,
    "home": {"zip": "10001"},
    "raw": "\xff\x00",
    "extra": "anything",
}


def test_a_record_of_every_type_family_fits() -> None:
    assert RecordCheck(EVERY_FAMILY)(GOOD) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": "1.5"}, "field 'x': expected double, got string"),
        ({"ts": "yesterday"}, "field 'ts': expected long (timestamp-millis), got string"),
        ({"day": "monday"}, "field 'day': expected int (date), got string"),
        (
            {"suit": "CLUBS"},
            "field 'suit': expected enum Suit (SPADES, HEARTS), got string 'CLUBS'",
        ),
        ({"digest": "abc"}, "field 'digest': expected fixed Digest (4 bytes), got string"),
        ({"tags": ["a", 1]}, "field 'tags[1]': expected string, got integer"),
        ({"weights": {"a": "heavy"}}, "field 'weights.a': expected double, got string"),
        ({"either": 1.5}, "field 'either': expected null or string or int, got number"),
        ({"home": {"zip": 10001}}, "field 'home.zip': expected string, got integer"),
        ({"home": {"floor": 2}}, "field 'home.zip' is missing"),
        ({"work": {"zip": None}}, "field 'work.zip' is null but not nullable (type string)"),
        ({"raw": 5}, "field 'raw': expected bytes, got integer"),
        ({"id": None}, "field 'id' is null but not nullable (type long)"),
        ({"tags": None}, "field 'tags' is null but not nullable (type array of string)"),
    ],
)
def test_each_problem_is_named_where_it_is(change: dict[str, Any], message: str) -> None:
    assert RecordCheck(EVERY_FAMILY)({**GOOD, **change}) == message


def test_every_missing_required_field_is_listed_and_nullable_ones_may_be_absent() -> None:
    check = RecordCheck(EVERY_FAMILY)
    missing = {k: v for k, v in GOOD.items() if k not in ("id", "tags", "either", "work")}
    assert check(missing) == "field 'id' is missing; field 'tags' is missing"


def test_several_problems_are_reported_together() -> None:
    check = RecordCheck([F("a", "double"), F("b", {"type": "array", "items": "int"})])
    assert check({"a": "x", "b": [True]}) == (
        "field 'a': expected double, got string; field 'b[0]': expected int, got boolean"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([F("a", "Nope")], "field 'a': unknown type 'Nope'"),
        ([F("a", {"type": "enum", "name": "E"})], "field 'a': missing key 'symbols'"),
        ([F("a", "int"), F("a", "long")], "field 'a' is defined twice"),
        ([F("a", "int"), F("b", {"type": "array"})], "field 'b': missing key 'items'"),
    ],
)
def test_a_bad_type_is_refused_naming_its_field(fields: list[F], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        parse_fields(fields)


def test_an_avsc_record_schema_becomes_fields_with_unions_with_null_as_nullable() -> None:
    schema = {
        "type": "record",
        "name": "In",
        "fields": [
            {"name": "a", "type": ["null", "double"], "doc": "maybe"},
            {"name": "b", "type": ["null", "string", "int"]},
            {"name": "c", "type": {"type": "array", "items": "long"}},
        ],
    }
    assert parse_record_schema(schema) == [
        {"name": "a", "type": "double", "nullable": True, "doc": "maybe"},
        {"name": "b", "type": ["string", "int"], "nullable": True},
        {"name": "c", "type": {"type": "array", "items": "long"}, "nullable": False},
    ]
    with pytest.raises(SchemaError, match="a record schema is needed"):
        parse_record_schema({"type": "array", "items": "int"})


def test_labels_name_types_for_people() -> None:
    assert label({"type": "map", "values": {"type": "array", "items": "int"}}) == (
        "map of array of int"
    )
    assert label(ADDRESS) == "record Address"
    assert label(["null", "double"]) == "null or double"


def test_records_become_avro_data_and_come_back_as_they_were() -> None:
    schema = record_schema(EVERY_FAMILY)
    to_datum = DatumConverter(schema)
    record = {k: v for k, v in GOOD.items() if k != "extra"}
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), [to_datum(record)])
    read: list[Any] = list(fastavro.reader(io.BytesIO(buf.getvalue())))
    (back,) = read
    assert str(back["price"]) == "2.58"  # \x01\x02: 258 unscaled, scale 2
    assert back["ts"].year == 2023  # the reader made a datetime of it
    expected = {**record, "home": {"zip": "10001", "floor": None}, "work": None}
    assert JsonConverter(schema)(back) == expected


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)


@settings(max_examples=400, deadline=None)
@given(value=JSON_VALUES)
def test_the_fast_predicates_accept_exactly_what_fastavro_accepts(value: Any) -> None:
    for kind in ("boolean", "int", "long", "float", "double", "string"):
        assert TYPE_CHECKS[kind](value) == validate(value, kind, raise_errors=False), kind
