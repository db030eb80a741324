"""Checks of records against a channel's schema (an ordered list of fields of any Avro type).

Pure logic, no I/O. A record matches when every non-nullable field is present and not null and
every present field's value is of its Avro type, as fastavro decides (`common.avro`: the same
check and wording as the scoring service, `field 'x': expected double, got string`); extra
fields are allowed (the schema lists what a channel needs, not everything a record may carry).
Each schema is compiled once (`RecordCheck`) and kept for the flow's life.
"""

from __future__ import annotations

from common.avro import RecordCheck
from ir.types import FieldSpec
from scoring_flow.types import Record

_compiled: dict[int, tuple[list[FieldSpec], RecordCheck]] = {}


def checker(schema: list[FieldSpec]) -> RecordCheck:
    """The compiled check of `schema` (made on first use; a flow has at most three schemas)."""
    entry = _compiled.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = (schema, RecordCheck(schema))
        _compiled[id(schema)] = entry
    return entry[1]


def violation(record: Record, schema: list[FieldSpec]) -> str | None:
    """Why `record` does not match `schema` (every problem), or None when it does."""
    return checker(schema)(record)
