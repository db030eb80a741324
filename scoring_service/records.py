"""The records contract: parsing a records body, checking records against a schema, results.

Pure functions, no I/O. A records body is a JSON list of objects. Each result item is an
object (one output), a list of objects (a generator model's 0..n outputs) or
`{"$error": reason}` for a record that failed its schema check or its scoring.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from common.fields import TYPE_CHECKS, json_type, missing_message, value_message
from scoring_service.config import FieldSpec
from scoring_service.errors import BadRequestError, InvalidInputError

Record = dict[str, Any]
Result = Record | list[Record]
Checker = Callable[[Record], "Record | str"]
"""Returns the record projected to the schema's fields, or the reason it is invalid."""

ERROR_KEY = "$error"


def error_item(reason: str) -> Record:
    """The result item of a record that failed."""
    return {ERROR_KEY: reason}


def is_error(item: Any) -> bool:
    """Whether a result item is an error item."""
    return isinstance(item, dict) and ERROR_KEY in item


def parse_records(body: bytes) -> list[Record]:
    """Decode a records body; raise 400 for bad JSON and 422 for a wrong shape."""
    if not body:
        raise BadRequestError("empty body: expected a JSON list of records (objects)")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise InvalidInputError(
            f"body must be a JSON list of records (objects), got {json_type(data)}"
        )
    if data and set(map(type, data)) != {dict}:
        for i, item in enumerate(data):
            if type(item) is not dict:
                raise InvalidInputError(f"record [{i}] must be an object, got {json_type(item)}")
    return data


def field_error(field: FieldSpec, value: Any) -> str:
    """The message for a value that does not fit its field."""
    return value_message(field.name, field.type, value)


def make_checker(fields: Sequence[FieldSpec]) -> Checker:
    """Compile a schema into a fast per-record check that also projects onto its fields."""
    specs = [(f, f.name, TYPE_CHECKS[f.type], f.nullable) for f in fields]
    missing = object()

    def check(record: Record) -> Record | str:
        out: Record = {}
        for field, name, ok, nullable in specs:
            value = record.get(name, missing)
            if value is missing:
                if nullable:
                    out[name] = None
                    continue
                return missing_message(name)
            if value is None:
                if nullable:
                    out[name] = None
                    continue
                return field_error(field, value)
            if not ok(value):
                return field_error(field, value)
            out[name] = value
        return out

    return check


def check_all(
    records: list[Record], checker: Checker | None
) -> tuple[list[Record], list[int], dict[int, str]]:
    """Split records into (valid rows, their indexes, {index: reason} of invalid ones)."""
    if checker is None:
        return records, list(range(len(records))), {}
    rows: list[Record] = []
    index: list[int] = []
    bad: dict[int, str] = {}
    for i, record in enumerate(records):
        checked = checker(record)
        if isinstance(checked, str):
            bad[i] = checked
        else:
            rows.append(checked)
            index.append(i)
    return rows, index, bad


def merge_results(
    total: int, *, index: list[int], results: list[Result], bad: dict[int, str]
) -> list[Result]:
    """Put scored results and error items back in input order."""
    if not bad:
        return results
    out: list[Result] = [error_item(reason) for reason in (bad.get(i, "") for i in range(total))]
    for i, result in zip(index, results, strict=True):
        out[i] = result
    return out


DUMP_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dump_results(results: list[Result]) -> bytes:
    """Encode results; an item that cannot be encoded becomes an error item, not a 500."""
    try:
        return orjson.dumps(results, option=DUMP_OPTS)
    except TypeError:
        pass
    parts = []
    for item in results:
        try:
            parts.append(orjson.dumps(item, option=DUMP_OPTS))
        except TypeError as exc:
            parts.append(orjson.dumps(error_item(f"result is not JSON-serialisable: {exc}")))
    return b"[" + b",".join(parts) + b"]"
