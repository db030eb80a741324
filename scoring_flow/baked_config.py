"""What a baked engine runs, worked out from its environment and assets: the model and its
type, each slot's channel (FastScore stream descriptors, `ir.fastscore`), the schemas bound to
the slots, and the flow.

Pure: the files are read by the caller (`scoring_flow.baked`) and handed in. Every refusal is a
`ConfigError` naming the variable, slot or field and saying what is supported.

Schemas are bound to slots by the descriptor's `Schema`, or by the model's annotations, as
FastScore model annotations are written (`# fastscore.schema.0: inputsch`, also
`# fastscore.input: inputsch` / `# fastscore.output: outputsch`, and the `ModelOp.` prefix);
both for one slot must name the same schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.avro import simple_type
from ir.fastscore import Conversion, DescriptorError, convert
from ir.values import FlowValues
from scoring_flow.config import parse_flow_values
from scoring_flow.errors import ConfigError
from scoring_flow.secrets import env_var_name

MODEL_TYPES = {
    ".py": "python",
    ".joblib": "sklearn",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".onnx": "onnx",
}
REFUSED_MODELS = {
    ".pfa": "PFA",
    ".ppfa": "PrettyPFA",
    ".r": "R",
    ".java": "Java",
    ".jar": "Java",
    ".m": "Octave",
    ".c": "C",
    ".ipynb": "Jupyter",
    ".sas": "SAS",
}
DEFAULT_BATCH = 256
INPUT, OUTPUT = "0", "1"

_ANNOTATION = re.compile(r"^\s*#\s*(fastscore|modelop)\.([A-Za-z0-9_$.-]+)\s*:\s*(.*?)\s*$", re.I)
_SLOT_SCOPES = {"$all": (INPUT, OUTPUT), "$in": (INPUT,), "$out": (OUTPUT,)}
SUPPORTED_ANNOTATIONS = (
    "fastscore.schema.<slot>",
    "fastscore.input",
    "fastscore.output",
    "fastscore.slot.<slot>",
    "fastscore.action (action)",
    "fastscore.recordsets (no)",
    "fastscore.module-attached",
)


def parse_pairs(text: str, what: str) -> dict[str, str]:
    """`a:x;b:y` as {"a": "x", "b": "y"} (paths may contain ':' after the first)."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = part.partition(":")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{what}: {part!r} is not NAME:PATH")
        out[key.strip()] = value.strip()
    return out


def parse_list(text: str) -> list[str]:
    """`a;b` as ["a", "b"]."""
    return [p.strip() for p in text.split(";") if p.strip()]


def model_type(model: Path) -> str:
    """The model type by its file suffix; unsupported languages refused by name."""
    suffix = model.suffix.lower()
    if suffix in MODEL_TYPES:
        return MODEL_TYPES[suffix]
    supported = ".py (python), .joblib/.pkl/.pickle (scikit-learn), .onnx (ONNX)"
    if suffix in REFUSED_MODELS:
        raise ConfigError(
            f"MODEL {model.name}: {REFUSED_MODELS[suffix]} models are not supported; "
            f"supported: {supported}"
        )
    raise ConfigError(f"MODEL {model.name}: unknown model type; supported: {supported}")


@dataclass
class Annotations:
    """What a model's FastScore annotations say."""

    schemas: dict[str, str] = field(default_factory=dict)
    """slot -> schema name."""
    unused: set[str] = field(default_factory=set)
    """Slots the model does not use (`fastscore.slot.N: unused`)."""


def _slots(scope: str | None, default: tuple[str, ...], tag: str) -> tuple[str, ...]:
    if scope is None:
        return default
    if scope in _SLOT_SCOPES:
        return _SLOT_SCOPES[scope]
    if scope in (INPUT, OUTPUT):
        return (scope,)
    raise ConfigError(
        f"model annotation {tag}: slot {scope!r} is not supported; supported: 0, 1, $all, "
        "$in, $out (one input and one output stream)"
    )


def model_annotations(text: str) -> Annotations:
    """The FastScore annotations of a model's source (`# fastscore.<tag>[.<slot>]: value`)."""
    out = Annotations()
    for line in text.splitlines():
        match = _ANNOTATION.match(line)
        if match is None:
            continue
        tag = match.group(2)
        value = match.group(3)
        name, _, scope = tag.partition(".")
        scope_or_none = scope or None
        written = f"{match.group(1)}.{tag}"
        if name == "schema":
            for slot in _slots(scope_or_none, (INPUT, OUTPUT), written):
                out.schemas[slot] = value
        elif name in ("input", "output") and scope_or_none is None:
            out.schemas[INPUT if name == "input" else OUTPUT] = value
        elif name == "slot":
            if value.lower() not in ("in-use", "unused"):
                raise ConfigError(
                    f"model annotation {written}: {value!r}; supported: in-use, unused"
                )
            for slot in _slots(scope_or_none, (INPUT, OUTPUT), written):
                if value.lower() == "unused":
                    out.unused.add(slot)
                else:
                    out.unused.discard(slot)
        elif name == "action":
            _slots(scope_or_none, (INPUT,), written)
            if value != "action":
                raise ConfigError(
                    f"model annotation {written}: {value!r} is not supported: the engine calls "
                    "action(datum); supported: action"
                )
        elif name == "recordsets":
            _slots(scope_or_none, (INPUT, OUTPUT), written)
            if value.lower() not in ("no", "false"):
                raise ConfigError(
                    f"model annotation {written}: {value!r} is not supported: the model gets "
                    "one record per action() call; supported: no, false"
                )
        elif name == "module-attached" and scope_or_none is None:
            continue  # attachments are on the model's import path (ATTACHMENTS)
        else:
            raise ConfigError(
                f"model annotation {written} is not supported; supported: "
                f"{', '.join(SUPPORTED_ANNOTATIONS)}"
            )
    return out


@dataclass
class Slot:
    """One stream slot: its channel, and what its descriptor asked for besides."""

    number: str
    name: str
    conversion: Conversion

    @property
    def channel(self) -> dict[str, Any]:
        return self.conversion.spec


@dataclass
class Plan:
    """Everything the baked engine runs."""

    model: Path
    model_type: str
    source: Slot
    sink: Slot
    dead_letter: Slot | None
    secrets: dict[str, str]
    """Env var -> value for credentials written in descriptors (the secretRefs resolve them)."""
    warnings: list[str]

    @property
    def mode(self) -> str:
        return "batch" if self.source.conversion.finite else "streaming"

    @property
    def batch_size(self) -> int:
        return self.source.conversion.batch_size or DEFAULT_BATCH

    @property
    def input_schema(self) -> list[dict[str, Any]] | None:
        schema: list[dict[str, Any]] | None = self.source.channel["format"].get("schema")
        return schema


def _bind_schema(
    slot: str,
    descriptor: dict[str, Any],
    annotations: Annotations,
    schemas: Mapping[str, Any],
) -> dict[str, Any]:
    """The descriptor with the schema the model binds to its slot, when it names none itself."""
    bound = annotations.schemas.get(slot)
    if bound is None:
        return descriptor
    if bound not in schemas:
        known = ", ".join(sorted(schemas)) or "(none)"
        raise ConfigError(
            f"the model binds schema {bound!r} to slot {slot} (fastscore.schema.{slot}), and "
            f"SCHEMAS has no such name; known: {known}"
        )
    own = descriptor.get("Schema")
    if isinstance(own, dict) and set(own) == {"$ref"}:
        own = own["$ref"]
    if own is None:
        return {**descriptor, "Schema": bound}
    if own != bound:
        raise ConfigError(
            f"slot {slot}: the stream descriptor's Schema {own!r} and the model's "
            f"fastscore.schema.{slot} {bound!r} differ; name one schema"
        )
    return descriptor


def _slot(
    number: str,
    descriptor: Any,
    *,
    role: str,
    schemas: Mapping[str, Any],
    annotations: Annotations,
) -> Slot:
    if isinstance(descriptor, dict):
        descriptor = _bind_schema(number, descriptor, annotations, schemas)
    name = f"stream-{number}" if number in (INPUT, OUTPUT) else "dead-letter"
    try:
        conv = convert(
            descriptor, name=name, role="source" if role == "source" else "sink", schemas=schemas
        )
    except DescriptorError as exc:
        what = f"stream {number}" if number in (INPUT, OUTPUT) else "TEKSCORE_DEAD_LETTER"
        raise ConfigError(f"{what}: {exc}") from exc
    return Slot(number, name, conv)


def check_slots(slots: set[str], *, model: Path, model_text: str | None) -> Annotations:
    """The model's annotations, once the slots STREAMS gives are the ones it needs: 0 and 1
    (1 may be left out when the model says `fastscore.slot.1: unused`)."""
    annotations = (
        model_annotations(model_text or "") if model_type(model) == "python" else Annotations()
    )
    extra = sorted(slots - {INPUT, OUTPUT})
    if extra:
        raise ConfigError(
            f"STREAMS slot {extra[0]}: supported slots are 0 (the input) and 1 (the output)"
        )
    if INPUT not in slots or (OUTPUT not in slots and OUTPUT not in annotations.unused):
        raise ConfigError("STREAMS must give slot 0 (input) and slot 1 (output)")
    return annotations


def make_plan(
    *,
    model: Path,
    model_text: str | None,
    schemas: Mapping[str, Any],
    streams: Mapping[str, Any],
    dead_letter: Any | None = None,
) -> Plan:
    """The plan for a model, its named schemas (field lists), the descriptors of its stream
    slots and an optional dead-letter descriptor (a tekscore addition)."""
    kind = model_type(model)
    annotations = check_slots(set(streams), model=model, model_text=model_text)
    output: Any = streams.get(OUTPUT)
    if output is None:
        output = {"Transport": "discard"}
    source = _slot(INPUT, streams[INPUT], role="source", schemas=schemas, annotations=annotations)
    sink = _slot(OUTPUT, output, role="sink", schemas=schemas, annotations=annotations)
    dead = None
    if dead_letter is not None:
        dead = _slot("dead", dead_letter, role="sink", schemas={}, annotations=Annotations())
    if sink.conversion.round_trip and not source.conversion.round_trip:
        raise ConfigError(
            "stream 1: a REST output gives the outputs back to the round trips of a REST input, "
            "and stream 0 is not REST"
        )
    if kind != "python" and source.channel["format"].get("schema"):
        for f in source.channel["format"]["schema"]:
            if simple_type(f["type"]) in (None, "null"):
                raise ConfigError(
                    f"stream 0: field {f['name']!r} of the input schema is not of a primitive "
                    f"type, and a {kind} model takes primitive features"
                )
    secrets: dict[str, str] = {}
    warnings: list[str] = []
    for slot in (source, sink, dead):
        if slot is None:
            continue
        for key, value in slot.conversion.credentials.items():
            secrets[env_var_name(slot.name, key)] = value
        if slot.conversion.credentials:
            warnings.append(
                f"stream {slot.number}: S3 credentials are read from the stream descriptor, as "
                "FastScore did; a Kubernetes Secret (secretRef) or the AWS environment is "
                "preferred"
            )
        if slot.conversion.notes:
            warnings.append(
                f"stream {slot.number}: {', '.join(slot.conversion.notes)} accepted: what they "
                "ask for holds without a setting (docs/compatibility.md)"
            )
    return Plan(
        model=model,
        model_type=kind,
        source=source,
        sink=sink,
        dead_letter=dead,
        secrets=secrets,
        warnings=warnings,
    )


def baked_flow(plan: Plan, *, url: str) -> FlowValues:
    """The flow the engine runs: slot 0 -> score with the model -> slot 1. A python model's
    outputs are what it returns (FastScore's `action` yields whole output records); other
    models' results are added to the input record."""
    data: dict[str, Any] = {
        "name": "baked",
        "mode": plan.mode,
        "source": {**plan.source.channel, "name": "stream-0"},
        "sink": {**plan.sink.channel, "name": "stream-1"},
        "steps": [
            {
                "type": "score",
                "model": "model",
                "service": "engine",
                "merge": plan.model_type != "python",
            }
        ],
        "services": {"engine": {"url": url, "protocol": "records", "models": ["model"]}},
        "batchSize": plan.batch_size,
    }
    if plan.dead_letter is not None:
        data["deadLetter"] = {**plan.dead_letter.channel, "name": "dead-letter"}
    return parse_flow_values(data)


def service_config(plan: Plan) -> dict[str, Any]:
    """The `serve-model --config` document for the model (its input schema gives a scikit-learn
    or ONNX model its feature order; a python model gets whole records)."""
    entry: dict[str, Any] = {
        "name": "model",
        "type": plan.model_type,
        "uri": plan.model.resolve().as_uri(),
    }
    schema = plan.input_schema
    if schema and plan.model_type != "python":
        entry["schema"] = {"input": schema}
    return {"name": "engine", "runtime": "python", "models": [entry]}
