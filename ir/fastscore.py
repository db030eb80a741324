"""FastScore / ModelOp Center stream descriptors as DataChannels.

Pure, no I/O. A stream descriptor is the JSON document FastScore attaches to an engine slot
(docs/compatibility.md lists every field, what it maps to and what is refused, with the FastScore
pages and SDK code it was checked against). `convert` turns one into a DataChannel spec:

- `Transport` (a string or an object; `Type` in any case): `REST`/`HTTP` (served: round trips),
  `HTTP` with `Url` (read once, by the baked engine only), `Kafka`, `S3`, `file`, `inline`,
  `discard`; `ODBC`, `TCP`, `UDP`, `exec` are refused;
- `Encoding` (`json`, `avro-binary`, `csv`; absent means json) and `Envelope` (`delimited`,
  `delimited-csv`, `ocf-block`, null) together choose the channel's encoding;
- `Schema` (a name, `{"$ref": name}` or an inline Avro record schema) its schema;
- `Loop` makes a file, S3 or inline source start again at its end; `Batching.Watermark` is the
  flow's batch size; `SkipToRecord` (`earliest`/`latest`) a Kafka source's start;
- `Version`, `Description`, `LingerTime`, `Batching.NagleTime`, `Kafka.MaxWaitTime` are
  accepted (what they promise holds: see the docs), everything else is refused by name with the
  list of what is supported (`DescriptorError`), never ignored.

S3 credentials written in a descriptor become `secretRef`s to a Secret named after the channel
(keys `access-key-id`, `secret-access-key`); their values are handed back apart
(`Conversion.credentials`) and never put into the channel.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from common.avro import SchemaError, parse_record_schema

Role = Literal["source", "sink"]

ANY_DIRECTION = "tekscore.dev/direction"
"""Annotation of a DataChannel made from a descriptor (which has no direction): `any` lets a
flow use it as a source or a sink."""

TRANSPORTS = ("REST", "HTTP", "Kafka", "S3", "file", "inline", "discard")
REFUSED_TRANSPORTS = {
    "odbc": "ODBC",
    "tcp": "TCP",
    "udp": "UDP",
    "exec": "exec",
}
ENCODINGS = ("json", "avro-binary", "csv")
ENVELOPES = ("delimited", "delimited-csv", "ocf-block", "null")
CSV_ENCODING_FIELDS = ("Type", "Delimiter", "QuoteCharacter")
TOP_FIELDS = (
    "Version",
    "Description",
    "Transport",
    "Loop",
    "SkipTo",
    "SkipToRecord",
    "EndMarker",
    "Envelope",
    "Encoding",
    "Schema",
    "Batching",
    "LingerTime",
)
TRANSPORT_FIELDS: dict[str, tuple[str, ...]] = {
    "rest": ("Type", "Mode"),
    "http": ("Type", "Url"),
    "kafka": ("Type", "BootstrapServers", "Topic", "Partition", "MaxWaitTime", "Group"),
    "s3": ("Type", "Bucket", "ObjectKey", "AccessKeyID", "SecretAccessKey", "Region"),
    "file": ("Type", "Path"),
    "inline": ("Type", "Data", "DataBinary"),
    "discard": ("Type",),
}
ROUND_TRIP_PATH = "/2/active/model/roundtrip/0/1"
"""FastScore's round-trip path (input slot 0, output slot 1), as the FastScore SDK calls it."""


class DescriptorError(ValueError):
    """A descriptor that cannot become a channel; the message names the field and says what is
    supported."""


@dataclass
class Conversion:
    """A descriptor as a DataChannel spec, and what does not fit in one."""

    spec: dict[str, Any]
    """The DataChannel spec (camelCase): direction, type, format, config."""
    any_direction: bool = False
    """A file, S3 or Kafka descriptor serves as a source or a sink, whichever a flow needs."""
    credentials: dict[str, str] = field(default_factory=dict)
    """secretRef key -> value for credentials written in the descriptor (S3)."""
    batch_size: int | None = None
    """`Batching.Watermark`: records per micro-batch."""
    round_trip: bool = False
    """REST/HTTP: records come from (and outputs go back to) HTTP requests."""
    download_url: str | None = None
    """HTTP with `Url`: the input is that URL's content, read once."""
    schema_name: str | None = None
    """The named schema the descriptor refers to."""
    notes: list[str] = field(default_factory=list)
    """Accepted fields whose promise holds without a setting (for the log)."""

    @property
    def finite(self) -> bool:
        """Whether the source ends by itself (a batch flow), rather than runs until stopped."""
        kind = self.spec["type"]
        looping = bool(self.spec.get("config", {}).get("loop"))
        return kind in ("file", "s3", "inline") and not looping


def _supported(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(values)


def _check_fields(data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise DescriptorError(
            f"{where}: unknown field {unknown[0]!r}; supported: {_supported(allowed)}"
        )


def transport_of(descriptor: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The transport kind (lower case) and its fields (`"discard"` -> `{"Type": "discard"}`)."""
    transport = descriptor.get("Transport")
    if isinstance(transport, str):
        transport = {"Type": transport}
    if not isinstance(transport, dict) or not isinstance(transport.get("Type"), str):
        raise DescriptorError(
            "Transport: a transport name or an object with Type is needed; "
            f"supported: {_supported(TRANSPORTS)}"
        )
    kind = str(transport["Type"]).lower()
    if kind in REFUSED_TRANSPORTS:
        raise DescriptorError(
            f"Transport {REFUSED_TRANSPORTS[kind]} is not supported; supported: "
            f"{_supported(TRANSPORTS)}"
        )
    if kind not in TRANSPORT_FIELDS:
        raise DescriptorError(
            f"Transport {transport['Type']!r} is unknown; supported: {_supported(TRANSPORTS)}"
        )
    _check_fields(transport, TRANSPORT_FIELDS[kind], f"Transport {transport['Type']}")
    return kind, dict(transport)


def is_descriptor(data: Any) -> bool:
    """Whether a parsed document is a FastScore stream descriptor (not an IR document)."""
    return isinstance(data, dict) and "Transport" in data and "kind" not in data


def convert(
    descriptor: Any,
    *,
    name: str,
    role: Role | None = None,
    schemas: Mapping[str, list[dict[str, Any]]] | None = None,
) -> Conversion:
    """The DataChannel for a descriptor. `role` is the slot's direction in a baked engine (slot 0
    a source, slot 1 a sink); without it the transport decides (REST, HTTP, inline: source;
    discard: sink; file, S3, Kafka: either, see `Conversion.any_direction`). `schemas` are the
    named schemas a `Schema` may name (field lists, `common.avro.parse_record_schema`)."""
    if not isinstance(descriptor, dict):
        raise DescriptorError("a stream descriptor is a JSON object")
    _check_fields(descriptor, TOP_FIELDS, "the descriptor")
    kind, transport = transport_of(descriptor)
    direction: Role = role or ("sink" if kind == "discard" else "source")
    notes = _tolerated(descriptor, transport)
    conv = Conversion(spec={"direction": direction})
    conv.notes = notes
    _unsupported_top(descriptor, kind)

    fmt = _format(descriptor, kind, role)
    schema = _schema(descriptor.get("Schema"), schemas or {}, conv)
    if schema is not None:
        fmt["schema"] = schema
    conv.spec["format"] = fmt
    conv.batch_size = _batching(descriptor.get("Batching"))
    loop = _loop(descriptor, kind, direction)

    if kind in ("rest", "http"):
        if kind == "rest" and str(transport.get("Mode", "simple")).lower() != "simple":
            raise DescriptorError(
                f"Transport REST Mode {transport['Mode']!r} is not supported; supported: simple"
            )
        url = transport.get("Url")
        if kind == "http" and url is not None:
            if direction == "sink":
                raise DescriptorError("Transport HTTP with Url is an input (it reads the URL)")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise DescriptorError("Transport HTTP: Url must be an http(s) URL")
            if role is None:
                raise DescriptorError(
                    "Transport HTTP with Url: no data channel reads a URL; download it to a file "
                    "or an S3 object and describe that (the baked engine reads it once)"
                )
            conv.download_url = url  # read as a file: json, csv or an Avro container file
            conv.spec.update(type="file", config={"path": url})
            return conv
        if fmt["encoding"] != "jsonl":
            raise DescriptorError(
                f"Transport {transport['Type']}: Encoding must be json (requests and answers are "
                "JSON records)"
            )
        conv.round_trip = True
        if direction == "sink":
            conv.spec.update(type="discard", config={})
        else:
            conv.spec.update(type="http", config={"fastscore": True})
        return conv
    if kind == "kafka":
        if fmt["encoding"] in ("avro", "csv") and schema is None:
            raise DescriptorError(
                f"Encoding {_encoding(descriptor)} on Kafka needs a Schema: a message carries "
                "no field names (give Schema, or bind one with # fastscore.schema.<slot>)"
            )
        conv.spec.update(type="kafka", config=_kafka(descriptor, transport))
        conv.any_direction = role is None
        return conv
    if kind == "s3":
        conv.spec.update(type="s3", config=_s3(transport, name, conv, loop))
        conv.any_direction = role is None
        return conv
    if kind == "file":
        path = transport.get("Path")
        if not isinstance(path, str) or not path:
            raise DescriptorError("Transport file: Path is required")
        config: dict[str, Any] = {"path": path}
        if loop:
            config["loop"] = True
        conv.spec.update(type="file", config=config)
        conv.any_direction = role is None
        return conv
    if kind == "inline":
        if direction == "sink":
            raise DescriptorError("Transport inline is an input (its Data are the records)")
        records = _inline_records(transport, fmt["encoding"])
        inline: dict[str, Any] = {"records": records}
        if loop:
            inline["loop"] = True
        conv.spec.update(type="inline", config=inline)
        return conv
    if direction == "source":
        raise DescriptorError("Transport discard is an output (it drops what it gets)")
    conv.spec.update(type="discard", config={})
    return conv


def _tolerated(descriptor: Mapping[str, Any], transport: Mapping[str, Any]) -> list[str]:
    notes = []
    for key in ("Version", "Description", "LingerTime"):
        if descriptor.get(key) is not None:
            notes.append(key)
    batching = descriptor.get("Batching")
    if isinstance(batching, dict) and batching.get("NagleTime") is not None:
        notes.append("Batching.NagleTime")
    if transport.get("MaxWaitTime") is not None:
        notes.append("Transport.MaxWaitTime")
    return notes


def _unsupported_top(descriptor: Mapping[str, Any], kind: str) -> None:
    if descriptor.get("EndMarker") is not None:
        raise DescriptorError(
            "EndMarker (a record that ends the stream) is not supported: a stream ends where "
            "its data ends; set it to null or leave it out"
        )
    if descriptor.get("SkipTo") not in (None, 0):
        raise DescriptorError(
            "SkipTo (start at a byte offset) is not supported; supported: null or 0"
        )
    skip = descriptor.get("SkipToRecord")
    if skip is not None and not (kind == "kafka" and skip in ("earliest", "latest")):
        raise DescriptorError(
            f"SkipToRecord {skip!r} is not supported; supported: earliest, latest "
            "(Kafka inputs), or null"
        )


def _encoding(descriptor: Mapping[str, Any]) -> str:
    if "Encoding" in descriptor and descriptor["Encoding"] is None:
        raise DescriptorError(
            "Encoding null (raw bytes) is not supported: records are JSON objects; "
            f"supported: {_supported(ENCODINGS)}"
        )
    given = descriptor.get("Encoding") or "json"
    if isinstance(given, dict):  # the CSV page's {"Type": "csv", "Delimiter", "QuoteCharacter"}
        if not isinstance(given.get("Type"), str):
            raise DescriptorError(
                f"Encoding: a name or an object with Type; supported: {_supported(ENCODINGS)}"
            )
        kind = given["Type"].lower()
        _check_fields(given, CSV_ENCODING_FIELDS if kind == "csv" else ("Type",), "Encoding")
        if kind == "csv":
            _csv_dialect(given)
        given = kind
    raw = str(given).lower()
    if raw not in ENCODINGS:
        raise DescriptorError(
            f"Encoding {descriptor.get('Encoding')!r} is not supported; supported: "
            f"{_supported(ENCODINGS)}"
        )
    return raw


def _csv_dialect(encoding: Mapping[str, Any]) -> None:
    """CSV's `Delimiter` and `QuoteCharacter`: the channels read and write RFC 4180 CSV, so
    only its own (`,` and `"`) are accepted."""
    for key, ours in (("Delimiter", ","), ("QuoteCharacter", '"')):
        value = encoding.get(key)
        if value is not None and value != ours:
            raise DescriptorError(
                f"Encoding csv: {key} {value!r} is not supported (channels read and write "
                f"RFC 4180 CSV); supported: {ours!r}"
            )


def _delimited_csv(env: Mapping[str, Any], role: Role | None) -> None:
    """The CSV page's `delimited-csv` envelope: `Separator` (CRLF by default, `"\\n"` for
    Unix files), `SkipHeader` (a header row, true by default), `SkipBlankLines` (true)."""
    _check_fields(
        env, ("Type", "Separator", "SkipHeader", "SkipBlankLines"), "Envelope delimited-csv"
    )
    separator = env.get("Separator")
    if separator not in (None, "\n", "\r\n"):
        raise DescriptorError(
            f"Envelope delimited-csv: Separator {separator!r} is not supported; supported: "
            "a newline (\\n or \\r\\n)"
        )
    if separator == "\r\n" and role == "sink":
        raise DescriptorError(
            "Envelope delimited-csv: Separator '\\r\\n' on an output is not supported: CSV is "
            "written with \\n line ends; supported: '\\n'"
        )
    if env.get("SkipHeader") not in (None, True):
        raise DescriptorError(
            "Envelope delimited-csv: SkipHeader false (no header row) is not supported: the "
            "first line names the fields; supported: true"
        )
    if env.get("SkipBlankLines") not in (None, True):
        raise DescriptorError(
            "Envelope delimited-csv: SkipBlankLines false is not supported: a blank line is no "
            "record; supported: true"
        )


def _envelope(descriptor: Mapping[str, Any], role: Role | None) -> tuple[str | None, bool]:
    """(the envelope type or None when absent, whether it was given)."""
    if "Envelope" not in descriptor:
        return None, False
    env = descriptor["Envelope"]
    if env is None:
        return "null", True
    if isinstance(env, str):
        env = {"Type": env}
    if not isinstance(env, dict) or not isinstance(env.get("Type"), str):
        raise DescriptorError(
            f"Envelope: a name or an object with Type; supported: {_supported(ENVELOPES)}"
        )
    kind = str(env["Type"]).lower()
    if kind == "delimited":
        _check_fields(env, ("Type", "Separator"), "Envelope delimited")
        if env.get("Separator", "\n") not in ("\n", "\r\n"):
            raise DescriptorError(
                f"Envelope delimited: Separator {env['Separator']!r} is not supported; "
                "supported: a newline (\\n or \\r\\n)"
            )
    elif kind == "delimited-csv":
        _delimited_csv(env, role)
    elif kind == "ocf-block":
        _check_fields(env, ("Type", "SyncMarker", "SkipHeader"), "Envelope ocf-block")
        if env.get("SkipHeader"):
            raise DescriptorError(
                "Envelope ocf-block: SkipHeader true is not supported (the container file's "
                "header names its schema); supported: false"
            )
    else:
        raise DescriptorError(
            f"Envelope {env['Type']!r} is not supported; supported: {_supported(ENVELOPES)}"
        )
    return kind, True


def _format(descriptor: Mapping[str, Any], kind: str, role: Role | None) -> dict[str, Any]:
    encoding = _encoding(descriptor)
    envelope, _ = _envelope(descriptor, role)
    whole_files = kind in ("file", "s3", "http")
    if envelope == "delimited-csv":
        if encoding == "avro-binary":
            raise DescriptorError("Envelope delimited-csv needs Encoding csv (or json), not avro")
        return {"encoding": "csv"}
    if encoding == "csv":
        if envelope not in (None, "delimited") and whole_files:
            raise DescriptorError(f"Encoding csv takes Envelope delimited-csv, not {envelope}")
        return {"encoding": "csv"}
    if encoding == "avro-binary":
        if whole_files:
            if envelope not in (None, "ocf-block"):
                raise DescriptorError(
                    f"Encoding avro-binary in a {kind} stream takes Envelope ocf-block (an Avro "
                    f"object container file), not {envelope}"
                )
        elif envelope not in (None, "null"):
            raise DescriptorError(
                f"Encoding avro-binary on {kind}: one message is one record (Envelope null), "
                f"not {envelope}"
            )
        return {"encoding": "avro"}
    if envelope == "ocf-block":
        raise DescriptorError("Envelope ocf-block needs Encoding avro-binary")
    if envelope == "null" and whole_files:
        raise DescriptorError(
            f"Envelope null on a {kind} stream (the whole input is one record) is not "
            "supported; supported: delimited (one JSON record per line)"
        )
    return {"encoding": "jsonl"}


def _schema(
    ref: Any, schemas: Mapping[str, list[dict[str, Any]]], conv: Conversion
) -> list[dict[str, Any]] | None:
    if ref is None:
        return None
    if isinstance(ref, dict) and set(ref) == {"$ref"}:
        ref = ref["$ref"]
    if isinstance(ref, str):
        if ref not in schemas:
            known = ", ".join(sorted(schemas)) or "(none)"
            raise DescriptorError(f"Schema {ref!r} is not a known schema; known: {known}")
        conv.schema_name = ref
        return schemas[ref]
    try:
        return parse_record_schema(ref)
    except SchemaError as exc:
        raise DescriptorError(f"Schema: {exc}") from exc


def _batching(batching: Any) -> int | None:
    if batching is None or batching == "normal":
        return None
    if batching == "explicit":
        raise DescriptorError(
            "Batching explicit (the model cuts batches) is not supported; supported: normal, "
            "or {Watermark, NagleTime}"
        )
    if not isinstance(batching, dict):
        raise DescriptorError("Batching: normal, or an object with Watermark and NagleTime")
    _check_fields(batching, ("Watermark", "NagleTime"), "Batching")
    mark = batching.get("Watermark")
    nagle = batching.get("NagleTime")
    if nagle is not None and (not isinstance(nagle, int) or isinstance(nagle, bool) or nagle < 0):
        raise DescriptorError("Batching.NagleTime: a number of milliseconds (>= 0), or null")
    if mark is None:
        return None
    if not isinstance(mark, int) or isinstance(mark, bool) or mark < 1:
        raise DescriptorError("Batching.Watermark: a number of records (>= 1), or null")
    return mark


def _loop(descriptor: Mapping[str, Any], kind: str, direction: Role) -> bool:
    loop = descriptor.get("Loop")
    if loop is None or loop is False:
        return False
    if loop is not True:
        raise DescriptorError("Loop: true or false")
    if direction == "sink":
        raise DescriptorError("Loop applies to inputs only (an output stream does not loop)")
    if kind not in ("file", "s3", "inline"):
        raise DescriptorError(
            f"Loop is supported for file, S3 and inline inputs, not for {kind} (it is not seekable)"
        )
    return True


def _kafka(descriptor: Mapping[str, Any], transport: Mapping[str, Any]) -> dict[str, Any]:
    servers = transport.get("BootstrapServers")
    if isinstance(servers, list) and servers and all(isinstance(s, str) for s in servers):
        servers = ",".join(servers)
    if not isinstance(servers, str) or not servers:
        raise DescriptorError("Transport Kafka: BootstrapServers (a list of host:port) is required")
    topic = transport.get("Topic")
    if not isinstance(topic, str) or not topic:
        raise DescriptorError("Transport Kafka: Topic is required")
    if transport.get("Partition") not in (None, 0):
        raise DescriptorError(
            f"Transport Kafka: Partition {transport['Partition']!r} is not supported: the "
            "engine reads every partition of the topic as a consumer group; supported: 0"
        )
    config: dict[str, Any] = {"bootstrapServers": servers, "topic": topic}
    if transport.get("Group"):
        config["group"] = str(transport["Group"])
    skip = descriptor.get("SkipToRecord")
    if skip in ("earliest", "latest"):
        config["startFrom"] = skip
    return config


def _s3(transport: Mapping[str, Any], name: str, conv: Conversion, loop: bool) -> dict[str, Any]:
    bucket, key = transport.get("Bucket"), transport.get("ObjectKey")
    if not isinstance(bucket, str) or not bucket:
        raise DescriptorError("Transport S3: Bucket is required")
    if not isinstance(key, str) or not key:
        raise DescriptorError("Transport S3: ObjectKey is required")
    config: dict[str, Any] = {"bucket": bucket, "key": key}
    if transport.get("Region"):
        config["region"] = str(transport["Region"])
    given = {
        "access-key-id": transport.get("AccessKeyID"),
        "secret-access-key": transport.get("SecretAccessKey"),
    }
    if any(given.values()):
        if not all(isinstance(v, str) and v for v in given.values()):
            raise DescriptorError(
                "Transport S3: AccessKeyID and SecretAccessKey go together (or leave both out "
                "to use the AWS environment)"
            )
        conv.credentials = {k: str(v) for k, v in given.items()}
        config["accessKeyId"] = {"secretRef": {"name": name, "key": "access-key-id"}}
        config["secretAccessKey"] = {"secretRef": {"name": name, "key": "secret-access-key"}}
    if loop:
        config["loop"] = True
    return config


def _inline_records(transport: Mapping[str, Any], encoding: str) -> list[dict[str, Any]]:
    if encoding != "jsonl":
        raise DescriptorError("Transport inline: Encoding must be json")
    data, binary = transport.get("Data"), transport.get("DataBinary")
    if (data is None) == (binary is None):
        raise DescriptorError("Transport inline: give Data or DataBinary (one of them)")
    items: list[Any]
    if binary is not None:
        chunks = binary if isinstance(binary, list) else [binary]
        try:
            items = [base64.b64decode(c, validate=True).decode("utf-8") for c in chunks]
        except (binascii.Error, UnicodeDecodeError, TypeError) as exc:
            raise DescriptorError(
                f"Transport inline: DataBinary is not base64 text: {exc}"
            ) from exc
    else:
        items = data if isinstance(data, list) else [data]
    records: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        texts = item.splitlines() if isinstance(item, str) else [item]
        for text in texts:
            if isinstance(text, str):
                if not text.strip():
                    continue
                try:
                    value = json.loads(text)
                except ValueError as exc:
                    raise DescriptorError(
                        f"Transport inline: Data[{i}] is not JSON: {exc}"
                    ) from exc
            else:
                value = text
            if not isinstance(value, dict):
                raise DescriptorError(
                    f"Transport inline: Data[{i}] is not a record (a JSON object)"
                )
            records.append(value)
    return records


def channel_document(conv: Conversion, *, name: str, source: str) -> dict[str, Any]:
    """The DataChannel document for a conversion (what `tekscore channel import` writes)."""
    metadata: dict[str, Any] = {
        "name": name,
        "annotations": {"tekscore.dev/fastscore-descriptor": source},
    }
    if conv.any_direction:
        metadata["annotations"][ANY_DIRECTION] = "any"
    return {
        "apiVersion": "tekscore.dev/v1",
        "kind": "DataChannel",
        "metadata": metadata,
        "spec": conv.spec,
    }
