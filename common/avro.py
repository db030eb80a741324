"""Avro record schemas written as field lists: parsing them with fastavro, checking a decoded
record against them, and the Avro record schema a writer needs.

Pure, no I/O. A field is a name, an Avro type in any form the Avro specification allows (a
primitive name, its long form `{"type": "double"}`, a logical type, an enum, fixed, array, map,
union, a nested record, or the name of a type defined by an earlier field) and `nullable` (null,
or a missing field, is allowed). fastavro parses the types (`parse_fields`: a bad type is a
`SchemaError` naming the field) and decides whether a value fits a type
(`fastavro.validation.validate`); this module only says where a value does not fit, in the one
wording of `common.fields`::

    field 'x' is missing
    field 'x': expected double, got string
    field 'address.zip': expected string, got integer
    field 'tags[2]': expected string, got null
    field 'suit': expected enum Suit (SPADES, HEARTS), got string 'CLUBS'

JSON has no bytes: where a type says `bytes` or `fixed`, a string stands for its bytes (the Avro
JSON encoding: each character one byte, U+0000..U+00FF). Fields of a primitive type (without a
logical type) are checked with the predicates of `common.fields`, which accept exactly the JSON
values fastavro accepts for them (tests/common/test_avro.py checks that property) and cost a
third of a fastavro call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import fastavro
from fastavro.logical_writers import LOGICAL_WRITERS
from fastavro.validation import validate

from common.fields import TYPE_CHECKS, json_type, missing_message, value_message

PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")
"""The Avro primitive type names."""

_FAST = frozenset(("boolean", "int", "long", "float", "double", "string"))
"""Primitive types whose `common.fields` predicate is exactly fastavro's check on JSON values."""

_RECORD_NAME = "Record"


class SchemaError(ValueError):
    """A field list is not a valid Avro record schema; the message names the field."""


class FieldLike(Protocol):
    """What a field of a schema offers (the IR's and the scoring service's field specs)."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> Any: ...

    @property
    def nullable(self) -> bool: ...


def primitive_of(avro_type: Any) -> str | None:
    """The primitive type behind a primitive or its long form, logical types included
    (`{"type": "long", "logicalType": "timestamp-millis"}` -> `long`); None otherwise."""
    if isinstance(avro_type, str):
        return avro_type if avro_type in PRIMITIVES else None
    if isinstance(avro_type, dict):
        inner = avro_type.get("type")
        if isinstance(inner, str) and inner in PRIMITIVES:
            return inner
    return None


def simple_type(avro_type: Any) -> str | None:
    """The primitive name when `avro_type` is a plain primitive (short or long form, no logical
    type); None for everything else."""
    if isinstance(avro_type, str) and avro_type in PRIMITIVES:
        return avro_type
    if (
        isinstance(avro_type, dict)
        and set(avro_type) <= {"type", "doc"}
        and avro_type.get("type") in PRIMITIVES
    ):
        return str(avro_type["type"])
    return None


def nullable_type(avro_type: Any) -> Any:
    """`avro_type` with null allowed: a union with `"null"` first (unions are not nested)."""
    if isinstance(avro_type, list):
        return avro_type if "null" in avro_type else ["null", *avro_type]
    if avro_type == "null":
        return avro_type
    return ["null", avro_type]


def allows_null(avro_type: Any) -> bool:
    """Whether null is a value of the type (`null`, or a union with `null`)."""
    if isinstance(avro_type, list):
        return "null" in avro_type
    return simple_type(avro_type) == "null"


def record_schema(
    fields: Sequence[FieldLike], name: str = _RECORD_NAME, doc: str | None = None
) -> dict[str, Any]:
    """The Avro record schema of a field list (nullable fields as unions with null, default
    null), e.g. for writing container files or Kafka messages."""
    out: list[dict[str, Any]] = []
    for f in fields:
        entry: dict[str, Any] = {"name": f.name, "type": f.type}
        if f.nullable:
            entry["type"] = nullable_type(f.type)
            entry["default"] = None
        out.append(entry)
    schema: dict[str, Any] = {"type": "record", "name": name, "fields": out}
    if doc:
        schema["doc"] = doc
    return schema


def _describe_parse_error(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing key {exc.args[0]!r}"
    name = type(exc).__name__
    if name == "UnknownType":
        return f"unknown type {exc.args[0]!r} (not a primitive, nor defined by an earlier field)"
    return f"{name}: {exc}" if str(exc) else name


def parse_fields(fields: Sequence[FieldLike]) -> dict[str, Any]:
    """fastavro's parsed record schema of a field list; `SchemaError` naming the first field
    whose type is not valid Avro (or that repeats a name)."""
    seen: set[str] = set()
    for f in fields:
        if f.name in seen:
            raise SchemaError(f"field {f.name!r} is defined twice")
        seen.add(f.name)
    try:
        parsed: Any = fastavro.parse_schema(record_schema(fields))
        return dict(parsed)
    except Exception as exc:
        whole = exc
    for end in range(1, len(fields) + 1):  # find the first field that breaks it
        try:
            fastavro.parse_schema(record_schema(fields[:end]))
        except Exception as exc:
            raise SchemaError(
                f"field {fields[end - 1].name!r}: {_describe_parse_error(exc)}"
            ) from exc
    raise SchemaError(_describe_parse_error(whole)) from whole


def parse_record_schema(schema: Any) -> list[dict[str, Any]]:
    """The fields of an Avro record schema (a parsed `.avsc`) as `{name, type, nullable, doc?}`
    dicts: a field whose type is a union with null is nullable, its type the rest of the union
    (one type, or a smaller union); a primitive's long form is written short. `SchemaError`
    when it is not a valid record schema."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        kind = schema.get("type") if isinstance(schema, dict) else schema
        raise SchemaError(f"a record schema is needed (records are JSON objects), got {kind!r}")
    try:
        fastavro.parse_schema(schema)
    except Exception as exc:
        raise SchemaError(_describe_parse_error(exc)) from exc
    out: list[dict[str, Any]] = []
    for f in schema.get("fields") or []:
        avro_type = f["type"]
        nullable = False
        if isinstance(avro_type, list) and "null" in avro_type and len(avro_type) > 1:
            nullable = True
            rest = [t for t in avro_type if t != "null"]
            avro_type = rest[0] if len(rest) == 1 else rest
        short = simple_type(avro_type)
        entry: dict[str, Any] = {
            "name": f["name"],
            "type": short if short is not None else avro_type,
            "nullable": nullable,
        }
        if f.get("doc"):
            entry["doc"] = f["doc"]
        out.append(entry)
    return out


# ---------------------------------------------------------------- checking records


Check = Callable[[Mapping[str, Any]], str | None]


class RecordCheck:
    """A compiled check of records against a field list: `check(record)` is None when the
    record fits, else every problem, joined by `; `. Extra fields are allowed."""

    def __init__(self, fields: Sequence[FieldLike]) -> None:
        parse_fields(fields)  # a bad schema fails here, not on the first record
        self._fast: list[tuple[str, str, Callable[[Any], bool], bool]] = []
        complex_fields: list[FieldLike] = []
        for f in fields:
            simple = simple_type(f.type)
            if simple in _FAST:
                assert simple is not None
                self._fast.append((f.name, simple, TYPE_CHECKS[simple], f.nullable))
            else:
                complex_fields.append(f)
        self._complex: _ComplexCheck | None = (
            _ComplexCheck(complex_fields) if complex_fields else None
        )

    def __call__(self, record: Mapping[str, Any]) -> str | None:
        problems: list[str] = []
        for name, kind, ok, nullable in self._fast:
            value = record.get(name)
            if value is None:
                if not nullable:
                    problems.append(
                        value_message(name, kind, None) if name in record else missing_message(name)
                    )
                continue
            if not ok(value):
                problems.append(value_message(name, kind, value))
        if self._complex is not None:
            problems += self._complex(record)
        return "; ".join(problems) or None


class _ComplexCheck:
    """The fields that are not plain primitives: fastavro decides, `_Explainer` says why."""

    def __init__(self, fields: Sequence[FieldLike]) -> None:
        self.fields = list(fields)
        self.schema = record_schema(fields)
        self.parsed = fastavro.parse_schema(self.schema)
        self.names = _named_types(self.schema)
        self.bytes_fields = [
            (f["name"], f["type"])
            for f in self.schema["fields"]
            if _mentions_bytes(f["type"], self.names)
        ]
        self.required = [f.name for f in fields if not f.nullable and not allows_null(f.type)]

    def __call__(self, record: Mapping[str, Any]) -> list[str]:
        problems = [missing_message(n) for n in self.required if n not in record]
        if problems:
            present = {f.name for f in self.fields if f.name in record}
            return problems + self._explain(record, only=present)
        datum = {f.name: record.get(f.name) for f in self.fields}
        for name, avro_type in self.bytes_fields:  # only the fields that can hold bytes
            datum[name] = _as_bytes(datum[name], avro_type, self.names)
        if _valid(datum, self.parsed):
            return []
        return self._explain(record, only=None) or [
            "the record does not match the schema"  # fastavro and the explainer disagree
        ]

    def _explain(self, record: Mapping[str, Any], only: set[str] | None) -> list[str]:
        explainer = _Explainer(self.names)
        out: list[str] = []
        for f in self.fields:
            if only is not None and f.name not in only:
                continue
            avro_type = nullable_type(f.type) if f.nullable else f.type
            problem = explainer.explain(record.get(f.name), avro_type, f.name)
            if problem:
                out.append(problem)
        return out


def _valid(datum: Any, parsed: Any) -> bool:
    """fastavro's verdict; a value its logical-type preparation cannot read (a `date` given
    as `"monday"`) is not valid rather than an error."""
    try:
        return bool(validate(datum, parsed, raise_errors=False))
    except (ValueError, TypeError, ArithmeticError, AttributeError):
        return False


def _named_types(schema: Any, names: dict[str, Any] | None = None, ns: str = "") -> dict[str, Any]:
    """Every named type (record, enum, fixed) defined in a schema, by name and full name."""
    names = {} if names is None else names
    if isinstance(schema, list):
        for branch in schema:
            _named_types(branch, names, ns)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed") and "name" in schema:
            name = str(schema["name"])
            space = schema.get("namespace", ns)
            full = name if "." in name or not space else f"{space}.{name}"
            names[name.rsplit(".", 1)[-1]] = schema
            names[full] = schema
            ns = full.rsplit(".", 1)[0] if "." in full else space
        if kind in ("record", "error"):
            for f in schema.get("fields") or []:
                _named_types(f.get("type"), names, ns)
        elif kind == "array":
            _named_types(schema.get("items"), names, ns)
        elif kind == "map":
            _named_types(schema.get("values"), names, ns)
        elif isinstance(kind, dict | list):
            _named_types(kind, names, ns)
    return names


def _resolve(avro_type: Any, names: Mapping[str, Any]) -> Any:
    """A named-type reference replaced by its definition; other types as they are."""
    if isinstance(avro_type, str) and avro_type not in PRIMITIVES and avro_type in names:
        return names[avro_type]
    if isinstance(avro_type, dict) and isinstance(avro_type.get("type"), dict | list):
        return _resolve(avro_type["type"], names)
    if (
        isinstance(avro_type, dict)
        and isinstance(avro_type.get("type"), str)
        and avro_type["type"] not in PRIMITIVES
        and avro_type["type"] in names
        and set(avro_type) <= {"type", "doc"}
    ):
        return names[avro_type["type"]]
    return avro_type


def _mentions_bytes(schema: Any, names: Mapping[str, Any], seen: set[int] | None = None) -> bool:
    seen = set() if seen is None else seen
    schema = _resolve(schema, names)
    if id(schema) in seen:
        return False
    seen.add(id(schema))
    if isinstance(schema, list):
        return any(_mentions_bytes(b, names, seen) for b in schema)
    kind = primitive_of(schema)
    if kind == "bytes":
        return True
    if isinstance(schema, dict):
        t = schema.get("type")
        if t == "fixed":
            return True
        if t in ("record", "error"):
            return any(_mentions_bytes(f.get("type"), names, seen) for f in schema["fields"])
        if t == "array":
            return _mentions_bytes(schema.get("items"), names, seen)
        if t == "map":
            return _mentions_bytes(schema.get("values"), names, seen)
    return False


def _as_bytes(value: Any, schema: Any, names: Mapping[str, Any]) -> Any:
    """`value` with the strings that stand for `bytes`/`fixed` values turned into bytes (Avro
    JSON encoding); strings that cannot be bytes (a character above U+00FF) stay strings."""
    schema = _resolve(schema, names)
    if isinstance(value, str):
        wants_bytes = primitive_of(schema) == "bytes" or (
            isinstance(schema, dict) and schema.get("type") == "fixed"
        )
        if isinstance(schema, list):
            branches = [_resolve(b, names) for b in schema]
            wants_bytes = not any(primitive_of(b) == "string" for b in branches) and any(
                primitive_of(b) == "bytes" or (isinstance(b, dict) and b.get("type") == "fixed")
                for b in branches
            )
        if wants_bytes:
            try:
                return value.encode("latin-1")
            except UnicodeEncodeError:
                return value
        return value
    if isinstance(schema, list):
        for branch in schema:
            converted = _as_bytes(value, branch, names)
            if converted is not value:
                return converted
        return value
    if not isinstance(schema, dict):
        return value
    kind = schema.get("type")
    if kind in ("record", "error") and isinstance(value, dict):
        out = dict(value)
        for f in schema["fields"]:
            if f["name"] in value:
                out[f["name"]] = _as_bytes(value[f["name"]], f["type"], names)
        return out
    if kind == "array" and isinstance(value, list):
        return [_as_bytes(v, schema["items"], names) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _as_bytes(v, schema["values"], names) for k, v in value.items()}
    return value


def label(avro_type: Any, names: Mapping[str, Any] | None = None) -> str:
    """A short human name of a type, for messages: `double`, `long (timestamp-millis)`,
    `array of string`, `map of double`, `record Address`, `enum Suit (SPADES, HEARTS)`,
    `fixed MD5 (16 bytes)`, `null or double`."""
    names = names or {}
    if isinstance(avro_type, list):
        return " or ".join(label(b, names) for b in avro_type)
    if isinstance(avro_type, str):
        if avro_type in PRIMITIVES:
            return avro_type
        resolved = names.get(avro_type)
        return label(resolved, names) if isinstance(resolved, dict) else avro_type
    if not isinstance(avro_type, dict):
        return str(avro_type)
    kind = avro_type.get("type")
    logical = avro_type.get("logicalType")
    if isinstance(kind, str) and kind in PRIMITIVES:
        return f"{kind} ({logical})" if logical else kind
    if isinstance(kind, dict | list):
        return label(kind, names)
    if kind == "array":
        return f"array of {label(avro_type.get('items'), names)}"
    if kind == "map":
        return f"map of {label(avro_type.get('values'), names)}"
    if kind == "enum":
        return f"enum {avro_type.get('name')} ({', '.join(avro_type.get('symbols') or [])})"
    if kind == "fixed":
        extra = f", {logical}" if logical else ""
        return f"fixed {avro_type.get('name')} ({avro_type.get('size')} bytes{extra})"
    if kind in ("record", "error"):
        return f"record {avro_type.get('name')}"
    return str(kind)


class _Explainer:
    """Says where a value does not fit a type, descending into records, arrays, maps and
    unions; each leaf decision is fastavro's."""

    def __init__(self, names: Mapping[str, Any]) -> None:
        self.names = names

    def fits(self, value: Any, avro_type: Any) -> bool:
        wrapper = {
            "type": "record",
            "name": "_Probe",
            "fields": [{"name": "v", "type": avro_type}],
        }
        try:
            parsed = fastavro.parse_schema(wrapper, named_schemas=dict(_parsed_names(self.names)))
        except Exception:
            return False
        return _valid({"v": _as_bytes(value, avro_type, self.names)}, parsed)

    def explain(self, value: Any, avro_type: Any, path: str) -> str | None:
        resolved = _resolve(avro_type, self.names)
        if isinstance(resolved, list):
            return self._union(value, resolved, path)
        if value is None and not allows_null(resolved):
            return value_message(path, label(resolved, self.names), None)
        if isinstance(resolved, dict):
            kind = resolved.get("type")
            if kind in ("record", "error"):
                return self._record(value, resolved, path)
            if kind == "array" and isinstance(value, list):
                for i, item in enumerate(value):
                    problem = self.explain(item, resolved["items"], f"{path}[{i}]")
                    if problem:
                        return problem
                return None
            if kind == "map" and isinstance(value, dict):
                for key, item in value.items():
                    if not isinstance(key, str):
                        return f"field '{path}': map keys must be strings, got {json_type(key)}"
                    problem = self.explain(item, resolved["values"], f"{path}.{key}")
                    if problem:
                        return problem
                return None
            if kind == "enum" and isinstance(value, str):
                if value in (resolved.get("symbols") or []):
                    return None
                return f"field '{path}': expected {label(resolved)}, got string {value!r}"
        if self.fits(value, resolved):
            return None
        return value_message(path, label(resolved, self.names), value)

    def _record(self, value: Any, schema: dict[str, Any], path: str) -> str | None:
        if not isinstance(value, dict):
            return value_message(path, label(schema, self.names), value)
        for f in schema.get("fields") or []:
            name = f["name"]
            inner = f"{path}.{name}"
            if name not in value:
                if "default" in f or allows_null(_resolve(f["type"], self.names)):
                    continue
                return missing_message(inner)
            problem = self.explain(value[name], f["type"], inner)
            if problem:
                return problem
        return None

    def _union(self, value: Any, branches: list[Any], path: str) -> str | None:
        if any(self.fits(value, b) for b in branches):
            return None
        others = [b for b in branches if _resolve(b, self.names) != "null"]
        if value is not None and len(others) == 1:
            return self.explain(value, others[0], path)
        if value is None:
            return value_message(path, label(branches, self.names), None)
        return value_message(path, label(branches, self.names), value)


def _parsed_names(names: Mapping[str, Any]) -> dict[str, Any]:
    """fastavro's named-schema table for the named types (so a probe can reference them)."""
    table: dict[str, Any] = {}
    for definition in {id(d): d for d in names.values()}.values():
        try:
            fastavro.parse_schema(definition, named_schemas=table)
        except Exception:  # noqa: S112 - a definition that needs a later one is added with it
            continue
    return table


# ---------------------------------------------------------------- JSON records <-> Avro data


class DatumConverter:
    """Turns JSON records into what an Avro writer takes for a schema: the strings that stand
    for `bytes`/`fixed` values become bytes (the Avro JSON encoding). A schema without such
    types leaves records as they are, at no cost."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.names = _named_types(schema)
        self.needed = _mentions_bytes(schema, self.names)

    def __call__(self, record: Mapping[str, Any]) -> Any:
        if not self.needed:
            return record
        return _as_bytes(dict(record), self.schema, self.names)


class JsonConverter:
    """Turns what an Avro reader returns into the JSON record the same data is in the Avro JSON
    encoding: logical values back to their underlying type (a `timestamp-millis` datetime to
    its milliseconds, a `date` to its days, a `decimal` to its unscaled bytes, a `uuid` to its
    text; fastavro's own logical writers do it) and bytes to strings of one character per byte.
    A schema without logical types or bytes leaves records as they are, at no cost."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self.names = _named_types(schema)
        self.needed = _mentions_bytes(schema, self.names) or _mentions_logical(schema, self.names)

    def __call__(self, datum: Any) -> Any:
        if not self.needed:
            return datum
        return self._convert(datum, self.schema)

    def _convert(self, value: Any, schema: Any) -> Any:
        if value is None:
            return None
        schema = _resolve(schema, self.names)
        if isinstance(schema, list):
            probe = _Explainer(self.names)
            for branch in schema:
                if _resolve(branch, self.names) != "null" and probe.fits(value, branch):
                    return self._convert(value, branch)
            return value
        if isinstance(schema, dict):
            kind = schema.get("type")
            logical = schema.get("logicalType")
            if logical and isinstance(kind, str):
                writer = LOGICAL_WRITERS.get(f"{kind}-{logical}")
                if writer is not None and not isinstance(value, int | str | bytes):
                    value = writer(value, schema)
            if kind in ("record", "error") and isinstance(value, dict):
                out = dict(value)
                for f in schema["fields"]:
                    if f["name"] in value:
                        out[f["name"]] = self._convert(value[f["name"]], f["type"])
                return out
            if kind == "array" and isinstance(value, list):
                return [self._convert(v, schema["items"]) for v in value]
            if kind == "map" and isinstance(value, dict):
                return {k: self._convert(v, schema["values"]) for k, v in value.items()}
        if isinstance(value, bytes | bytearray):
            return bytes(value).decode("latin-1")
        return value


def _mentions_logical(schema: Any, names: Mapping[str, Any]) -> bool:
    found = False

    def visit(node: Any) -> None:
        nonlocal found
        if isinstance(node, dict):
            if "logicalType" in node:
                found = True
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return found
