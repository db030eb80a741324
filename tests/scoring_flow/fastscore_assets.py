"""FastScore assets written as the FastScore pages write them, for the baked-engine and channel
tests: Avro schemas of every type family (`input.avsc`, `output.avsc`), a `begin`/`action`
model bound to them by `# fastscore.schema.N` annotations, and stream descriptors."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import fastavro

INPUT_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": {"type": "long"}},
        {"name": "amount", "type": {"type": "double"}},
        {"name": "placed", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["GOLD", "SILVER"]}},
        {"name": "code", "type": {"type": "fixed", "name": "Code", "size": 2}},
        {"name": "items", "type": {"type": "array", "items": "string"}},
        {"name": "weights", "type": {"type": "map", "values": "double"}},
        {"name": "coupon", "type": ["null", "string"], "default": None},
        {
            "name": "ship",
            "type": {
                "type": "record",
                "name": "Address",
                "fields": [
                    {"name": "city", "type": "string"},
                    {"name": "zip", "type": ["null", "int"], "default": None},
                ],
            },
        },
    ],
}
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Scored",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "total", "type": "double"},
        {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["GOLD", "SILVER"]}},
        {"name": "city", "type": "string"},
        {"name": "n_items", "type": "int"},
    ],
}

MODEL = """# fastscore.schema.0: inputsch
# fastscore.schema.1: outputsch
import json
import os

FACTOR = None


def begin():
    global FACTOR
    FACTOR = 2.0


def action(datum):
    if os.environ.get("SEEN_FILE"):  # a scheduled job's service gets a minimal environment
        with open(os.environ["SEEN_FILE"], "a") as seen:
            seen.write(json.dumps(datum["id"]) + "\\n")
    yield {
        "id": datum["id"],
        "total": datum["amount"] * FACTOR,
        "tier": datum["tier"],
        "city": datum["ship"]["city"],
        "n_items": len(datum["items"]),
    }
"""

FAILING_MODEL = """# fastscore.schema.0: inputsch
def begin():
    raise RuntimeError("the lookup table is missing")


def action(datum):
    yield datum
"""


def order(i: int, **change: Any) -> dict[str, Any]:
    """A valid input record (JSON: the Avro JSON encoding)."""
    record = {
        "id": i,
        "amount": 10.0 + i,
        "placed": 1_700_000_000_000 + i,
        "day": 19_700 + i,
        "tier": "GOLD" if i % 2 else "SILVER",
        "code": "A" + chr(65 + i % 26),
        "items": ["pen"] * (i % 3 + 1),
        "weights": {"pen": 0.5},
        "coupon": None,
        "ship": {"city": f"city-{i}", "zip": None},
    }
    record.update(change)
    return record


def scored(i: int) -> dict[str, Any]:
    """What the model makes of `order(i)`."""
    source = order(i)
    return {
        "id": i,
        "total": source["amount"] * 2.0,
        "tier": source["tier"],
        "city": source["ship"]["city"],
        "n_items": len(source["items"]),
    }


def write_assets(
    folder: Path, *, model: str = MODEL, names: tuple[str, str] = ("input", "output")
) -> Path:
    """`model.py` and the schemas (`input.avsc`, `output.avsc`, or as `names` says) in `folder`
    (FastScore's /assets)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(model)
    (folder / f"{names[0]}.avsc").write_text(json.dumps(INPUT_SCHEMA, indent=2))
    (folder / f"{names[1]}.avsc").write_text(json.dumps(OUTPUT_SCHEMA, indent=2))
    return folder


def descriptor(folder: Path, name: str, doc: dict[str, Any]) -> Path:
    """A stream descriptor file."""
    path = folder / name
    path.write_text(json.dumps(doc, indent=2))
    return path


def avro_file(records: list[dict[str, Any]]) -> bytes:
    """An Avro object container file of `records` (JSON form) with the input schema."""
    parsed = fastavro.parse_schema(INPUT_SCHEMA)
    data = [{**r, "code": r["code"].encode("latin-1")} for r in records]
    buf = io.BytesIO()
    fastavro.writer(buf, parsed, data)
    return buf.getvalue()


def baked_env(folder: Path, streams: str, **extra: str) -> dict[str, str]:
    """The environment exactly as the FastScore baked-engine page writes it."""
    return {
        "MODEL": str(folder / "model.py"),
        "SCHEMAS": f"inputsch:{folder / 'input.avsc'};outputsch:{folder / 'output.avsc'}",
        "STREAMS": streams,
        "SEEN_FILE": str(folder / "seen.jsonl"),
        **extra,
    }


def seen(folder: Path) -> list[int]:
    """The ids the model's action() saw."""
    path = folder / "seen.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
