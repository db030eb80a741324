"""Record encodings on channels: jsonl, csv (with header) and Avro object container files.

Pure logic over file-like objects handed in by the caller (no file is opened here):
`decode` turns a binary stream into records (or `BadRecord`s for undecodable input, which the
flow dead-letters), `Encoder` turns records into bytes chunk by chunk so sinks can stream, and
`MessageCodec` encodes one record per Kafka message. CSV values are typed by the channel schema
when there is one; without a schema numbers are parsed as int or float and empty cells are null.

A record holding a value its encoding cannot carry (an integer past 64 bits in JSON, a lone
surrogate in UTF-8 text, a value Avro's schema does not take) is left out of the bytes, and
its index comes back with the reason (`Encoded.rejected`): the flow dead-letters that record
and goes on, instead of failing the whole job for one value. A batch whose records all fit is
encoded in one go, as before; only a batch with a misfit is encoded again record by record.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import IO, Any, NamedTuple

import fastavro
import orjson
from fastavro.write import Writer

from common.avro import DatumConverter, JsonConverter, primitive_of, record_schema
from ir.channels import Encoding
from ir.types import FieldSpec
from scoring_flow.types import BadRecord, Record

Decoded = Record | BadRecord


def avro_schema(fields: list[FieldSpec], name: str = "Record") -> dict[str, Any]:
    """The Avro record schema for a field list (nullable fields as `["null", type]`)."""
    return record_schema(fields, name)


# ---------------------------------------------------------------- decoding


def decode(
    encoding: Encoding, stream: IO[bytes], schema: list[FieldSpec] | None
) -> Iterator[Decoded]:
    """Records of a whole stream in `encoding`, lazily (memory stays bounded)."""
    if encoding == "jsonl":
        return _decode_jsonl(stream)
    if encoding == "csv":
        return _decode_csv(stream, schema)
    return _decode_avro(stream)


def decode_json_line(line: bytes | str) -> Decoded:
    """One JSON object, or a `BadRecord` saying why not."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return BadRecord(_text(line), f"invalid JSON: {exc}")
    if not isinstance(value, dict):
        return BadRecord(value, "a record must be a JSON object")
    return value


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


class JsonLines:
    """The records of a JSON-lines stream, one at a time (an iterator) or `take(n)` at a time.

    `take` is the hot path of file and S3 sources: it decodes a chunk of lines in one list
    comprehension, and only a chunk holding a line that is not a JSON object (blank, invalid,
    or another JSON value) is decoded again line by line, with the same results as `next`:
    blank lines skipped, `BadRecord`s for the others."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> JsonLines:
        return self

    def __next__(self) -> Decoded:
        for line in self._stream:
            if line.strip():  # an undecodable line is dead-lettered without its line ending
                return decode_json_line(line.rstrip(b"\r\n"))
        raise StopIteration

    def take(self, n: int) -> list[Decoded]:
        """Up to `n` records (fewer only at the end of the stream or where lines were blank;
        none only at the end)."""
        loads = orjson.loads
        while lines := list(islice(self._stream, n)):
            try:
                records: list[Any] = [loads(line) for line in lines]
            except orjson.JSONDecodeError:
                pass
            else:
                if all(type(r) is dict for r in records):
                    return records
            decoded = [decode_json_line(line.rstrip(b"\r\n")) for line in lines if line.strip()]
            if decoded:
                return decoded
        return []


def _decode_jsonl(stream: IO[bytes]) -> Iterator[Decoded]:
    return JsonLines(stream)


def _decode_csv(stream: IO[bytes], schema: list[FieldSpec] | None) -> Iterator[Decoded]:
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    types = {f.name: f for f in schema} if schema else None
    reader = csv.DictReader(text)
    for row in reader:
        if None in row:
            yield BadRecord(_row_text(row), "more cells than header columns")
            continue
        if any(v is None for v in row.values()):
            yield BadRecord(_row_text(row), "fewer cells than header columns")
            continue
        yield coerce_csv_row(row, types)


def _row_text(row: dict[Any, Any]) -> dict[str, Any]:
    return {("__extra__" if k is None else str(k)): v for k, v in row.items()}


def coerce_csv_row(row: dict[str, str], types: dict[str, FieldSpec] | None) -> Decoded:
    """Type the cells of one CSV row: by schema when given, else numbers where they parse."""
    out: Record = {}
    for key, cell in row.items():
        spec = types.get(key) if types is not None else None
        kind = primitive_of(spec.type) if spec is not None else None
        if cell == "":
            out[key] = "" if kind == "string" else None
            continue
        if spec is None:
            out[key] = _guess(cell)
            continue
        try:
            out[key] = _typed(cell, kind)
        except ValueError:
            return BadRecord(dict(row), f"field {key!r}: {cell!r} is not a valid {kind}")
    return out


def _guess(cell: str) -> Any:
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        return float(cell)
    except ValueError:
        return cell


def _typed(cell: str, kind: str | None) -> Any:
    """A cell of a field of primitive `kind`; a field of another type (array, map, record,
    union...) is written as JSON text, so it is read back as JSON when it parses."""
    if kind is None:
        try:
            return orjson.loads(cell)
        except orjson.JSONDecodeError:
            return cell
    if kind in ("int", "long"):
        return int(cell)
    if kind in ("float", "double"):
        return float(cell)
    if kind == "boolean":
        low = cell.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ValueError(cell)
    return cell


AVRO_MAGIC = b"Obj\x01"
"""The first four bytes of every Avro object container file."""


def _decode_avro(stream: IO[bytes]) -> Iterator[Decoded]:
    head = stream.peek(32)[:32] if isinstance(stream, io.BufferedReader) else None
    if head is not None and head[:4] != AVRO_MAGIC:
        shown = head
        raise ValueError(
            "the input is not an Avro object container file (it starts with "
            f"{shown!r}, not {AVRO_MAGIC!r}); is its encoding really avro?"
        )
    try:
        reader = fastavro.reader(stream)
    except ValueError as exc:
        raise ValueError(f"the input is not an Avro object container file: {exc}") from exc
    to_json = JsonConverter(reader.writer_schema)
    for rec in reader:
        if isinstance(rec, dict):
            yield to_json(rec)
        else:
            yield BadRecord(to_json(rec), "an avro datum must be a record")


# ---------------------------------------------------------------- encoding

UNENCODABLE = (TypeError, ValueError, OverflowError)
"""What the encoders raise for a value they cannot carry (orjson, csv, UTF-8, fastavro)."""


def unencodable(encoding: str, exc: BaseException) -> str:
    """Why one record cannot be written in `encoding` (its dead-letter reason)."""
    return f"cannot be written as {encoding}: {type(exc).__name__}: {exc}"


Rejected = dict[int, str]
"""Records left out of an encoding: index among the records given -> why (dead-letter reason)."""


class Encoded(NamedTuple):
    """The bytes of the records that fit, and why each other one does not."""

    data: bytes
    rejected: Rejected


def one_by_one(
    encoding: str, records: Sequence[Record], encode: Callable[[Record], bytes]
) -> Encoded:
    """Encode each record alone, keeping the ones that fit."""
    parts: list[bytes] = []
    rejected: Rejected = {}
    for i, record in enumerate(records):
        try:
            parts.append(encode(record))
        except UNENCODABLE as exc:
            rejected[i] = unencodable(encoding, exc)
    return Encoded(b"".join(parts), rejected)


def _jsonl(record: Record) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def jsonl_lines(records: Sequence[Record]) -> bytes:
    """JSON lines of `records`, the same bytes as `_jsonl` record by record, in one `orjson`
    call: the array's `},{` between two records becomes `}\n{`. That is exact only when every
    `},{` of the array is such a boundary; one inside a record (in a string, or between objects
    of a nested list) makes the count exceed `len(records) - 1`, and that batch is encoded
    record by record instead. Raises what orjson raises for a value it cannot carry."""
    if not records:
        return b""
    data = orjson.dumps(records)
    if data.count(b"},{") == len(records) - 1:  # records are objects: each joined by `},{`
        return data[1:-1].replace(b"},{", b"}\n{") + b"\n"
    return b"".join([_jsonl(r) for r in records])


class Encoder:
    """Records to bytes, chunk by chunk: `begin()`, then `encode(records)` any number of times,
    then `end()`. Concatenating the chunks gives one valid file of the encoding."""

    def __init__(self, encoding: Encoding, schema: list[FieldSpec] | None) -> None:
        self.encoding = encoding
        self.schema = schema
        self._columns: list[str] | None = [f.name for f in schema] if schema else None
        self._header_done = False
        self._buf = io.BytesIO()
        self._datum: DatumConverter | None = None
        if encoding == "avro":
            if not schema:
                raise ValueError("avro output needs a schema")
            record = avro_schema(schema)
            # the header (schema, codec null, our sync marker) from fastavro; the blocks are ours
            self._sync = os.urandom(16)
            Writer(self._buf, record, codec="null", sync_marker=self._sync)
            self._parsed = fastavro.parse_schema(record)
            self._datum = DatumConverter(record)

    def begin(self) -> bytes:
        """The bytes that open the file (the avro header; nothing for jsonl, csv)."""
        return self._drain()

    def encode(self, records: Sequence[Record]) -> Encoded:
        """The bytes of `records` that fit the encoding, and why the others do not."""
        if self.encoding == "jsonl":
            try:
                return Encoded(jsonl_lines(records), {})
            except UNENCODABLE:
                return one_by_one("jsonl", records, _jsonl)
        if self.encoding == "csv":
            head = self._csv_header(records)
            try:
                return Encoded(head + self._csv_rows(records), {})
            except UNENCODABLE:
                data, rejected = one_by_one("csv", records, lambda r: self._csv_rows([r]))
                return Encoded(head + data, rejected)
        return self._encode_avro(records)

    def _encode_avro(self, records: Sequence[Record]) -> Encoded:
        """One container block of the records that fit: each datum is written alone into the
        block's buffer, and one that fails is cut off again (so no record is half written)."""
        assert self._datum is not None
        block = io.BytesIO()
        rejected: Rejected = {}
        for i, r in enumerate(records):
            mark = block.tell()
            try:
                fastavro.schemaless_writer(block, self._parsed, self._datum(r))
            except UNENCODABLE as exc:
                block.seek(mark)
                block.truncate()
                rejected[i] = unencodable("avro", exc)
        count = len(records) - len(rejected)
        if not count:
            return Encoded(b"", rejected)
        data = block.getvalue()
        return Encoded(_avro_long(count) + _avro_long(len(data)) + data + self._sync, rejected)

    def end(self) -> bytes:
        """The bytes that close the file (a csv header if no record came but a schema is known)."""
        if self.encoding == "csv":
            return self._csv_header([])
        return self._drain()

    def _drain(self) -> bytes:
        data = self._buf.getvalue()
        self._buf.seek(0)
        self._buf.truncate()
        return data

    def _csv_header(self, records: Sequence[Record]) -> bytes:
        """The header line, the first time there are columns (the schema's, else the first
        record's keys); else nothing."""
        if self._header_done:
            return b""
        if self._columns is None:
            if not records:
                return b""
            self._columns = list(records[0])
        self._header_done = True
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(self._columns)
        return out.getvalue().encode("utf-8")

    def _csv_rows(self, records: Sequence[Record]) -> bytes:
        assert self._columns is not None
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for r in records:
            writer.writerow([_cell(r.get(c)) for c in self._columns])
        return out.getvalue().encode("utf-8")


def _avro_long(n: int) -> bytes:
    """An Avro `long`: zig-zag, then 7 bits a byte, low bits first."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


class MessageCodec:
    """One record per message (Kafka): jsonl = a JSON object, avro = schemaless Avro datum
    (needs the schema), csv = one header-less line in schema field order (needs the schema)."""

    def __init__(self, encoding: Encoding, schema: list[FieldSpec] | None) -> None:
        if encoding in ("avro", "csv") and not schema:
            raise ValueError(f"{encoding} messages need format.schema")
        self.encoding = encoding
        self.schema = schema
        record = avro_schema(schema) if schema else None
        self._avro: Any = fastavro.parse_schema(record) if record else None
        self._datum = DatumConverter(record) if record else None
        self._json = JsonConverter(record) if record else None
        self._types = {f.name: f for f in schema} if schema else None

    def encode(self, record: Record) -> bytes:
        """The message value for `record`."""
        if self.encoding == "jsonl":
            return orjson.dumps(record)
        if self.encoding == "avro":
            assert self._datum is not None
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, self._avro, self._datum(record))
            return buf.getvalue()
        assert self.schema is not None
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(
            [_cell(record.get(f.name)) for f in self.schema]
        )
        return out.getvalue().encode("utf-8")

    def decode(self, value: bytes | None) -> Decoded:
        """The record in one message value."""
        if value is None:
            return BadRecord(None, "empty message")
        if self.encoding == "jsonl":
            return decode_json_line(value)
        if self.encoding == "avro":
            try:
                rec = fastavro.schemaless_reader(io.BytesIO(value), self._avro, None)
            except Exception as exc:  # fastavro raises several types for bad data
                return BadRecord(value.hex(), f"invalid avro datum: {exc}")
            if not isinstance(rec, dict):
                return BadRecord(value.hex(), "not a record")
            assert self._json is not None
            converted: Record = self._json(rec)
            return converted
        assert self.schema is not None
        cells = next(csv.reader([value.decode("utf-8", "replace")]), [])
        if len(cells) != len(self.schema):
            return BadRecord(_text(value), f"expected {len(self.schema)} cells, got {len(cells)}")
        return coerce_csv_row(
            dict(zip([f.name for f in self.schema], cells, strict=True)), self._types
        )
