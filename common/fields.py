"""The field types of record schemas (Avro primitive types) and the one check of a value against
its field, with its one wording, shared by the IR, the scoring flow and the scoring service.

Pure, no I/O. A value fits its field when it is of the field's type: `boolean` a bool; `int` and
`long` an integer (never a bool) within 32 / 64 bits; `float` and `double` a number (never a
bool); `string` a str; `bytes` bytes or a str (JSON has no bytes). Messages::

    field 'x' is missing
    field 'x' is null but not nullable (type double)
    field 'x': expected double, got string
    field 'n': expected int, got integer (out of range for int)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

FieldType = Literal["boolean", "int", "long", "float", "double", "string", "bytes"]
"""The type of one field of a record schema."""

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def _boolean(v: Any) -> bool:
    return v is True or v is False


def _integer(low: int, high: int) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        return (type(v) is int or (isinstance(v, int) and not isinstance(v, bool))) and (
            low <= v <= high
        )

    return check


def _number(v: Any) -> bool:
    t = type(v)
    return t is float or t is int or (isinstance(v, int | float) and not isinstance(v, bool))


def _string(v: Any) -> bool:
    return type(v) is str or isinstance(v, str)


def _bytes(v: Any) -> bool:
    return isinstance(v, str | bytes)


TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "boolean": _boolean,
    "int": _integer(*_INT32),
    "long": _integer(*_INT64),
    "float": _number,
    "double": _number,
    "string": _string,
    "bytes": _bytes,
}
"""Per field type, the predicate a non-null value of that field must satisfy."""


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def missing_message(name: str) -> str:
    """A required field is absent."""
    return f"field '{name}' is missing"


def value_message(name: str, ftype: str, value: Any) -> str:
    """A present value does not fit its field (null in a field that is not nullable, or a value
    of another type)."""
    if value is None:
        return f"field '{name}' is null but not nullable (type {ftype})"
    extra = ""
    if ftype in ("int", "long") and isinstance(value, int) and not isinstance(value, bool):
        extra = f" (out of range for {ftype})"
    return f"field '{name}': expected {ftype}, got {json_type(value)}{extra}"
