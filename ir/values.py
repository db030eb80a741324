"""The values file: the one resolved tree that pre-processing emits and that both the
scoring-pipeline chart and the local backend consume.

Pure data, no I/O. Shape (camelCase keys, documented in docs/values.md)::

    contentHash: sha256 of the canonical tree without this key
    job:              id, name, pipeline, labels, parameters (resolved)
    global:           server-wide settings (image, logging, callback URL, ...), never from a job
    scoringServices:  [ServiceValues]  sorted by name, models inlined
    scoringFlows:     [FlowValues]     sorted by name, channels inlined, parameters applied,
                                       the scoring-service endpoints each calls in `services`

`charts/scoring-pipeline/values.schema.json` is generated from `Values`
(`tekscore schema --values`).
The scoring flow reads one `FlowValues`; the scoring service reads one `ServiceValues`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from ir.channels import ChannelSpec
from ir.documents import ModelSpec
from ir.flows import FilterStep, MapStep, PythonStep, Scalar
from ir.runtimes import BUILTIN_RUNTIMES, RuntimeValues
from ir.types import IRModel, Name, Resources, SecretKeyRef


class ModelValues(ModelSpec):
    """A model as a service loads it: `uri` absolute, `name` set."""

    name: Name


Port = Annotated[int, Field(ge=1, le=65535)]


class ServiceValues(IRModel):
    """A scoring service with its models inlined.

    `runtime` is the scoring-server family that runs it (a key of `global.runtimes`, which
    picks its image) or `external`. Where flows reach it: a service of ours is a logical
    endpoint, its `name` and `port`, which whoever runs it resolves (the chart: its Service
    `http://<job.id>-<name>:<port>`; the local runner: a loopback port); a `runtime: external`
    service has the `url` given in the IR. `derived` says the service was made by the
    one-service-per-unserved-model rule.
    """

    name: Name
    runtime: Name
    url: str | None = Field(default=None, pattern=r"^https?://.+")
    port: Port | None = None
    models: list[ModelValues] = Field(min_length=1)
    replicas: int = Field(default=1, ge=0, le=100)
    workers: int = Field(default=1, ge=1, le=64)
    resources: Resources = Field(default_factory=Resources)
    derived: bool = False

    @model_validator(mode="after")
    def _endpoint(self) -> ServiceValues:
        if self.runtime != "external" and (self.port is None or self.url is not None):
            raise ValueError("a service of ours has a port and no url (the runner resolves it)")
        if self.runtime == "external" and (self.url is None or self.port is not None):
            raise ValueError("an external service has a url and no port")
        return self


class ServiceEndpoint(IRModel):
    """How a flow reaches one scoring service: `records` (ours) or OIP V2 `infer` (external).

    A logical endpoint names one of the pipeline's services of ours and its port (`service`,
    `port`) and gets its `url` from whoever runs the flow (the chart, the local runner); an
    external one has its `url` from the start. The flow calls `url`."""

    url: str | None = Field(default=None, pattern=r"^https?://.+")
    service: Name | None = None
    port: Port | None = None
    protocol: Literal["records", "v2"]
    models: list[Name]

    @model_validator(mode="after")
    def _target(self) -> ServiceEndpoint:
        if self.url is None and (self.service is None or self.port is None):
            raise ValueError("an endpoint needs a url, or a service and its port")
        return self


class ResolvedScoreStep(IRModel):
    """A score step with its service chosen."""

    type: Literal["score"]
    name: str | None = None
    model: Name
    service: Name
    inputs: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)
    merge: bool = True


ResolvedStep = Annotated[
    ResolvedScoreStep | MapStep | FilterStep | PythonStep, Field(discriminator="type")
]


class FlowValues(IRModel):
    """One scoring flow, fully resolved: what `tekscore flow run CONFIG` reads.

    Runtime facts that are not part of the pipeline come from the environment instead:
    `TEKSCORE_JOB_ID`, `TEKSCORE_CALLBACK_URL`, `TEKSCORE_CALLBACK_TOKEN` (docs/values.md).
    """

    name: Name
    mode: Literal["batch", "streaming"]
    source: ChannelSpec
    sink: ChannelSpec
    dead_letter: ChannelSpec | None = None
    steps: list[ResolvedStep] = Field(default_factory=list)
    services: dict[Name, ServiceEndpoint] = Field(default_factory=dict)
    secrets: list[SecretKeyRef] = Field(
        default_factory=list,
        description="Every Secret key the flow's channels reference (sorted), for mounting.",
    )
    batch_size: int = Field(default=1024, ge=1, strict=True)
    concurrency: int = Field(default=2, ge=1, strict=True)
    replicas: int = Field(default=1, ge=1, strict=True)
    shards: int = Field(default=1, ge=1, strict=True)
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=3, ge=0, strict=True)
    max_failed_records: int | None = Field(default=None, ge=0, strict=True)
    max_failed_ratio: float | None = Field(default=None, ge=0, le=1)


class ImageValues(IRModel):
    """The one image every part runs from."""

    registry: str = "ghcr.io"
    repository: str = "tekscore/tekscore"
    tag: str = "0.1.0"
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"


class TracingValues(IRModel):
    """OpenTelemetry-style trace export settings."""

    enabled: bool = False
    endpoint: str | None = None


class GlobalValues(IRModel):
    """Server-wide settings applied last by pre-processing; a job cannot override them."""

    namespace: str | None = None
    callback_url: str | None = Field(
        default=None, description="Base URL of the scheduling server, for flow reports."
    )
    image: ImageValues = Field(default_factory=ImageValues)
    image_pull_secrets: list[str] = Field(default_factory=list)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    tracing: TracingValues = Field(default_factory=TracingValues)
    git_server: str | None = None
    runtimes: dict[Name, RuntimeValues] = Field(
        default_factory=lambda: {"python": BUILTIN_RUNTIMES["python"]},
        description="The enabled scoring-server families (the platform chart's scoring-server "
        "sub-charts) and the model types each serves; default: the python one only (a platform "
        "that declares none has the python scoring server only).",
    )


class JobValues(IRModel):
    """The job this values file is for. Its id starts Kubernetes object names (Services must
    start with a letter), so it is a DNS-1035 label."""

    id: Annotated[str, StringConstraints(pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")]
    name: str | None = None
    pipeline: Name
    labels: dict[str, str] = Field(default_factory=dict)
    parameters: dict[str, Scalar] = Field(default_factory=dict)


class Values(IRModel):
    """The whole values file."""

    content_hash: str = Field(default="", pattern=r"^([0-9a-f]{64})?$")
    job: JobValues
    global_: GlobalValues = Field(default_factory=GlobalValues, alias="global")
    scoring_services: list[ServiceValues] = Field(default_factory=list)
    scoring_flows: list[FlowValues] = Field(default_factory=list)


def values_json_schema() -> dict[str, Any]:
    """The JSON Schema of the values file (what the chart's values.schema.json holds)."""
    schema = Values.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "scoring-pipeline values"
    return schema
