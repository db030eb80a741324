"""Checks of records against a channel's schema (an ordered list of Avro-typed fields).

Pure logic, no I/O. A record matches when every non-nullable field is present and not null and
every present field has a value of its type; extra fields are allowed (the schema lists what a
channel needs, not everything a record may carry).
"""

from __future__ import annotations

from typing import Any

from ir.types import FieldSpec
from scoring_flow.types import Record


def _is_type(value: Any, kind: str) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("int", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("float", "double"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    return isinstance(value, bytes | str)


def violation(record: Record, schema: list[FieldSpec]) -> str | None:
    """Why `record` does not match `schema`, or None when it does."""
    problems: list[str] = []
    for spec in schema:
        value = record.get(spec.name)
        if value is None:
            if not spec.nullable:
                what = "is null" if spec.name in record else "is missing"
                problems.append(f"field {spec.name!r} {what}")
            continue
        if not _is_type(value, spec.type):
            problems.append(
                f"field {spec.name!r} should be {spec.type}, got {type(value).__name__}"
            )
    return "; ".join(problems) or None
