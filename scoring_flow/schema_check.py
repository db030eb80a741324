"""Checks of records against a channel's schema (an ordered list of Avro-typed fields).

Pure logic, no I/O. A record matches when every non-nullable field is present and not null and
every present field has a value of its type (`common.fields`: the same check and wording as the
scoring service); extra fields are allowed (the schema lists what a channel needs, not
everything a record may carry).
"""

from __future__ import annotations

from common.fields import TYPE_CHECKS, missing_message, value_message
from ir.types import FieldSpec
from scoring_flow.types import Record


def violation(record: Record, schema: list[FieldSpec]) -> str | None:
    """Why `record` does not match `schema` (every problem), or None when it does."""
    problems: list[str] = []
    for spec in schema:
        value = record.get(spec.name)
        if value is None:
            if not spec.nullable:
                problems.append(
                    value_message(spec.name, spec.type, None)
                    if spec.name in record
                    else missing_message(spec.name)
                )
            continue
        if not TYPE_CHECKS[spec.type](value):
            problems.append(value_message(spec.name, spec.type, value))
    return "; ".join(problems) or None
