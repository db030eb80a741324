"""`tekscore baked`: the standalone "baked engine" — one model, one input stream, one output
stream, no scheduler (the FastScore use case).

Environment:

- `MODEL`: the model file: `*.py` (python), `*.joblib`/`*.pkl`/`*.pickle` (sklearn), `*.onnx`;
- `SCHEMAS=name:path;...`: Avro record schemas (JSON) by name;
- `STREAMS=0:path;1:path`: stream descriptors (JSON) for input slot 0 and output slot 1, e.g.
  `{"Transport": {"Type": "file", "Path": "/data/in.jsonl"}, "Encoding": "json", "Schema": "in"}`.
  Transports: `file` (Path), `kafka` (BootstrapServers, Topic, Group?), `inline` (Data: records;
  input only), `discard` (output only). Encodings: `json` (one JSON record per line or message),
  `csv`, `avro-binary` (an Avro container file, or schemaless Avro datums on Kafka). `Schema` is
  a name from SCHEMAS or an inline Avro schema.

The descriptor parsing and the building of the flow (`baked_flow`) are pure functions;
`run_baked` reads the files, starts `tekscore serve-model` as a child process on a free port,
runs the flow (batch when slot 0 ends — file, inline — else streaming until SIGTERM), then stops
the child. The model's input schema is slot 0's schema (so an sklearn model without
`feature_names_in_` gets its feature order from it); outputs are the input record merged with
the model's results.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
import yaml
from pydantic import ValidationError

from common.avro import SchemaError, parse_record_schema
from common.ports import free_port
from common.termination import TERMINATION_ENV
from ir.types import FieldSpec
from ir.values import FlowValues
from scoring_flow.config import RuntimeSettings, parse_flow_values
from scoring_flow.errors import ConfigError

log = structlog.get_logger("scoring_flow.baked")

MODEL_TYPES = {
    ".py": "python",
    ".joblib": "sklearn",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".onnx": "onnx",
}
ENCODINGS = {"json": "jsonl", "jsonl": "jsonl", "csv": "csv", "avro-binary": "avro", "avro": "avro"}


# ---------------------------------------------------------------- pure parsing


def parse_pairs(text: str, what: str) -> dict[str, str]:
    """`a:x;b:y` as {"a": "x", "b": "y"} (paths may contain ':' after the first)."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = part.partition(":")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{what}: {part!r} is not NAME:PATH")
        out[key.strip()] = value.strip()
    return out


def avro_fields(schema: Any, name: str) -> list[FieldSpec]:
    """An Avro record schema as the flow's field list (every Avro type; a union with null
    makes the field nullable)."""
    try:
        return [FieldSpec.model_validate(f) for f in parse_record_schema(schema)]
    except (SchemaError, ValidationError) as exc:
        raise ConfigError(f"schema {name!r}: {exc}") from exc


def descriptor_channel(
    descriptor: Any, *, slot: int, schemas: Mapping[str, list[FieldSpec]]
) -> dict[str, Any]:
    """A FastScore-like stream descriptor as a channel spec (camelCase dict)."""
    if not isinstance(descriptor, dict):
        raise ConfigError(f"stream {slot}: the descriptor must be a JSON object")
    transport = descriptor.get("Transport") or {}
    if isinstance(transport, str):
        transport = {"Type": transport}
    kind = str(transport.get("Type", "")).lower()
    encoding = ENCODINGS.get(str(descriptor.get("Encoding") or "json").lower())
    if encoding is None:
        raise ConfigError(f"stream {slot}: unknown Encoding {descriptor.get('Encoding')!r}")
    fmt: dict[str, Any] = {"encoding": encoding}
    schema_ref = descriptor.get("Schema")
    if isinstance(schema_ref, str):
        if schema_ref not in schemas:
            raise ConfigError(f"stream {slot}: schema {schema_ref!r} is not in SCHEMAS")
        fmt["schema"] = [f.model_dump(exclude_none=True) for f in schemas[schema_ref]]
    elif isinstance(schema_ref, dict):
        fields = avro_fields(schema_ref, f"stream {slot}")
        fmt["schema"] = [f.model_dump(exclude_none=True) for f in fields]
    direction = "source" if slot == 0 else "sink"
    channel: dict[str, Any] = {"direction": direction, "format": fmt}
    if kind == "file":
        channel.update(type="file", config={"path": str(transport.get("Path", ""))})
    elif kind == "kafka":
        servers = transport.get("BootstrapServers") or []
        if isinstance(servers, list):
            servers = ",".join(servers)
        config: dict[str, Any] = {"bootstrapServers": servers, "topic": transport.get("Topic")}
        if transport.get("Group"):
            config["group"] = transport["Group"]
        channel.update(type="kafka", config=config)
    elif kind == "inline":
        channel.update(type="inline", config={"records": transport.get("Data") or []})
    elif kind == "discard":
        channel.update(type="discard")
    else:
        raise ConfigError(f"stream {slot}: transport {kind or '?'!r} is not supported")
    return channel


def baked_flow(
    *, source: dict[str, Any], sink: dict[str, Any], url: str, batch_size: int = 256
) -> FlowValues:
    """The flow the baked engine runs: slot 0 -> score with `model` -> slot 1."""
    mode = "batch" if source["type"] in ("file", "inline") else "streaming"
    return parse_flow_values(
        {
            "name": "baked",
            "mode": mode,
            "source": source,
            "sink": sink,
            "steps": [{"type": "score", "model": "model", "service": "engine"}],
            "services": {"engine": {"url": url, "protocol": "records", "models": ["model"]}},
            "batchSize": batch_size,
        }
    )


def service_config(
    model: Path, *, model_type: str, input_schema: list[FieldSpec] | None
) -> dict[str, Any]:
    """The `serve-model --config` document for the baked model."""
    entry: dict[str, Any] = {"name": "model", "type": model_type, "uri": model.resolve().as_uri()}
    if input_schema and model_type != "python":
        entry["schema"] = {"input": [f.model_dump(exclude_none=True) for f in input_schema]}
    return {"name": "engine", "runtime": "python", "models": [entry]}


# ---------------------------------------------------------------- I/O


def _read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what} {path}: {exc}") from exc


def _tekscore() -> str:
    beside = Path(sys.executable).parent / "tekscore"
    return str(beside) if beside.exists() else shutil.which("tekscore") or "tekscore"


def prepare(env: Mapping[str, str]) -> tuple[Path, str, dict[str, Any], dict[str, Any]]:
    """Read MODEL, SCHEMAS, STREAMS: (model, model type, source channel, sink channel)."""
    model = Path(env.get("MODEL") or "")
    if not env.get("MODEL") or not model.is_file():
        raise ConfigError(f"MODEL must name a model file, got {env.get('MODEL')!r}")
    model_type = MODEL_TYPES.get(model.suffix.lower())
    if model_type is None:
        raise ConfigError(f"MODEL {model}: unknown type (use {', '.join(MODEL_TYPES)})")
    schemas = {
        name: avro_fields(_read_json(path, "schema"), name)
        for name, path in parse_pairs(env.get("SCHEMAS") or "", "SCHEMAS").items()
    }
    streams = parse_pairs(env.get("STREAMS") or "", "STREAMS")
    if set(streams) != {"0", "1"}:
        raise ConfigError("STREAMS must give slot 0 (input) and slot 1 (output)")
    source = descriptor_channel(_read_json(streams["0"], "stream"), slot=0, schemas=schemas)
    sink = descriptor_channel(_read_json(streams["1"], "stream"), slot=1, schemas=schemas)
    return model, model_type, source, sink


def run_baked(*, metrics_port: int | None = None) -> int:
    """The `tekscore baked` command: the process exit code."""
    from common.logs import configure_logging
    from scoring_flow.runner import EXIT_CONFIG, RunOptions, ended, run_loaded

    settings = RuntimeSettings.from_env(
        {k: v for k, v in os.environ.items() if k not in ("TEKSCORE_CALLBACK_URL",)}
    )
    configure_logging(settings.log_level, settings.log_format, cache=True)
    try:
        model, model_type, source, sink = prepare(os.environ)
        port = free_port()
        flow = baked_flow(source=source, sink=sink, url=f"http://127.0.0.1:{port}")
    except ConfigError as exc:
        return ended(EXIT_CONFIG, str(exc))
    input_schema = flow.source.format.schema_
    folder = Path(tempfile.mkdtemp(prefix="tekscore-baked-"))
    config = folder / "service.yaml"
    config.write_text(
        yaml.safe_dump(service_config(model, model_type=model_type, input_schema=input_schema))
    )
    child = subprocess.Popen(
        [_tekscore(), "serve-model", "--config", str(config), "--port", str(port)],
        env={k: v for k, v in os.environ.items() if k != TERMINATION_ENV},  # the record is ours
    )
    log.info("engine started", model=str(model), type=model_type, port=port, pid=child.pid)
    try:
        return run_loaded(flow, settings=settings, options=RunOptions(metrics_port=metrics_port))
    finally:
        _stop(child)
        shutil.rmtree(folder, ignore_errors=True)


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)
    log.debug("engine stopped", code=child.returncode)
