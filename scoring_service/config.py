"""The scoring service's configuration: the `--config` file shape, `--model` options, settings.

Pure data plus `load_config_file` (which reads one file). Nothing is created at import time.

`--config FILE` (JSON or YAML) is one entry of the values file's `scoringServices` list::

    name: iris                 # service name (optional here)
    runtime: python            # python, pmml, tensorflow (the image family); `external`: refused
    workers: 1                 # default for --workers
    models:
      - name: iris             # DNS-1123 label
        type: sklearn          # python | sklearn | onnx | xgboost | lightgbm | pmml |
                               # tensorflow   (external: refused)
        uri: file:///abs/model.joblib    # file://, http(s)://, s3://
        sha256: null           # or 64 lower-case hex digits
        schema:
          input:  [{name: sepal_length, type: double, nullable: false}, ...]
          output: [{name: prediction, type: string}]

Keys this service does not use (`url`, `replicas`, `resources`, `derived`, ...) are ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

from common.fields import FieldType
from common.names import Name
from scoring_service.errors import ConfigError

ModelType = Literal[
    "python", "sklearn", "onnx", "xgboost", "lightgbm", "pmml", "tensorflow", "external"
]

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
SPEC_ENV = "TEKSCORE_SERVE_SPEC"
"""Environment variable carrying the resolved `ServeSpec` (JSON) to uvicorn worker processes."""


class _Shape(BaseModel):
    """Base of the config shapes: camelCase keys accepted, unknown keys ignored, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class FieldSpec(_Shape):
    """One field of a record schema (Avro primitive types)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    type: FieldType
    nullable: bool = False


class ModelSchema(_Shape):
    """The input and output fields of a model; either may be absent."""

    input: list[FieldSpec] | None = None
    output: list[FieldSpec] | None = None


class ModelConfig(_Shape):
    """One model to serve: where it comes from and what it takes."""

    name: Name
    type: ModelType
    uri: str = Field(pattern=r"^((file|https?|s3)://|git\+(https?|ssh|file)://).+")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    schema_: ModelSchema | None = Field(default=None, alias="schema")


class ServiceConfig(_Shape):
    """One scoring service: the `--config` file, or the `--model` options."""

    name: str = "scoring-service"
    runtime: str = "python"
    """The scoring-server family that runs this service (it picks the image on Kubernetes);
    every family runs this same server. `external` services are other OIP servers."""
    workers: int = Field(default=1, ge=1, le=64)
    models: list[ModelConfig] = Field(min_length=1)


class ServeSettings(_Shape):
    """How the server runs; from the command line and the environment."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1)
    model_dir: str | None = None
    log_level: str | None = None
    log_format: Literal["json", "console"] | None = None
    coalesce: bool = True
    """Score concurrent records requests to a model with `coalesce` with one call."""


class ServeSpec(_Shape):
    """Everything a server process needs; serialised into `TEKSCORE_SERVE_SPEC` for workers."""

    service: ServiceConfig
    settings: ServeSettings


def _describe(exc: ValidationError) -> str:
    """One line per pydantic error: `path: message`."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top)"
        lines.append(f"{loc}: {err['msg']}")
    return "; ".join(lines)


def parse_model_option(text: str) -> ModelConfig:
    """Parse `NAME=TYPE:URI`; a URI without scheme is a local path made absolute."""
    name, sep, rest = text.partition("=")
    mtype, sep2, uri = rest.partition(":")
    if not sep or not sep2 or not name or not uri:
        raise ConfigError(
            f"--model {text!r}: expected NAME=TYPE:URI, e.g. iris=sklearn:model.joblib"
        )
    if "://" not in uri:
        uri = Path(uri).expanduser().resolve().as_uri()
    try:
        return ModelConfig.model_validate({"name": name, "type": mtype, "uri": uri})
    except ValidationError as exc:
        raise ConfigError(f"--model {text!r}: {_describe(exc)}") from exc


def load_config_file(path: Path) -> ServiceConfig:
    """Read and validate a `--config` file (JSON by `.json` suffix, else YAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"--config {path}: not valid JSON/YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping (one scoringServices entry)")
    try:
        return ServiceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"--config {path}: {_describe(exc)}") from exc


def build_service_config(config_file: Path | None, model_options: list[str]) -> ServiceConfig:
    """Combine `--config` and `--model` options; refuse what this server cannot serve."""
    base = load_config_file(config_file) if config_file else None
    extra = [parse_model_option(m) for m in model_options]
    models = [*(base.models if base else []), *extra]
    if not models:
        raise ConfigError("no model to serve: give --model NAME=TYPE:URI or --config FILE")
    if base is not None and base.runtime == "external":
        raise ConfigError(
            f"service '{base.name}' has runtime 'external': it is served by its own OIP server, "
            "not by tekscore serve-model"
        )
    seen: set[str] = set()
    for model in models:
        if model.name in seen:
            raise ConfigError(f"model '{model.name}' is given twice")
        seen.add(model.name)
        if model.type == "external":
            raise ConfigError(
                f"model '{model.name}' has type 'external': it is served by the OIP server at "
                f"{model.uri}, not by tekscore serve-model"
            )
    data = base.model_dump(by_alias=True) if base else {}
    data["models"] = [m.model_dump(by_alias=True) for m in models]
    return ServiceConfig.model_validate(data)
