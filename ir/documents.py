"""The five kinds of IR document (`ScoringPipeline`, `Model`, `ScoringService`, `DataChannel`,
`ScoringFlow`) and their common envelope.

Pure data, no I/O. Every document is `apiVersion: tekscore.dev/v1`, `kind`, `metadata.name`
(a DNS-1123 label) and `spec`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from ir.channels import ChannelSpec
from ir.flows import FlowSpec
from ir.types import IRModel, Name, PrimitiveSchema, Resources

API_VERSION = "tekscore.dev/v1"

ModelType = Literal[
    "python", "sklearn", "onnx", "xgboost", "lightgbm", "pmml", "tensorflow", "external"
]
"""What a model is; which scoring server serves each type is `ir.runtimes`' table."""


class ModelSchema(IRModel):
    """The input and output fields of a model."""

    input: PrimitiveSchema | None = None
    output: PrimitiveSchema | None = None


class ModelSpec(IRModel):
    """A model: its type and where to download it from (`file://`, `http(s)://`, `s3://`; a
    python model also from a folder, a Racetrack job with its `job.yaml`, or from git:
    `git+https://host/repo.git@branch#subdirectory=dir`, under the server's `gitServer`).

    For `type: external` the `uri` is the base URL of an Open Inference Protocol server.
    """

    name: Name | None = Field(default=None, description="Only in inline pipeline entries.")
    type: ModelType
    uri: str = Field(pattern=r"^((file|https?|s3)://|git\+(https?|ssh|file)://).+")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    schema_: ModelSchema | None = Field(default=None, alias="schema")
    resources: Resources | None = Field(
        default=None,
        description="What the model needs (a Racetrack manifest's resources): the resources "
        "of the service derived for it.",
    )

    @model_validator(mode="after")
    def _external_is_http(self) -> ModelSpec:
        if self.type == "external" and not self.uri.startswith(("http://", "https://")):
            raise ValueError("an external model's uri is the http(s) URL of its OIP server")
        if self.uri.startswith("git+") and self.type != "python":
            raise ValueError("a git uri is a python model's source (a Racetrack job's folder)")
        return self


class ServiceSpec(IRModel):
    """A scoring service: one of our scoring servers, or an external OIP V2 server.

    `runtime` is the scoring-server family (`python`, `pmml`, `tensorflow`, or another the
    platform enables); left out, pre-processing picks the first that serves every model of the
    service (`ir.runtimes`). `external` is another OIP server at `url`.
    """

    name: Name | None = Field(default=None, description="Only in inline pipeline entries.")
    runtime: Name | None = Field(
        default=None,
        description="python, pmml, tensorflow (or another enabled runtime), or external; "
        "default: the first enabled runtime that serves all of the service's models.",
    )
    url: str | None = Field(default=None, pattern=r"^https?://.+")
    models: list[Name] = Field(min_length=1)
    replicas: int = Field(default=1, ge=0, le=100)
    workers: int = Field(default=1, ge=1, le=64, description="Server worker processes.")
    resources: Resources = Field(default_factory=Resources)

    @model_validator(mode="after")
    def _url_iff_external(self) -> ServiceSpec:
        if self.runtime == "external" and self.url is None:
            raise ValueError("runtime external needs url (the OIP V2 server's base URL)")
        if self.runtime != "external" and self.url is not None:
            raise ValueError("url is only for runtime external")
        return self


class ParameterSpec(IRModel):
    """A pipeline parameter, referenced as `${name}` in flow fields."""

    type: Literal["string", "number", "integer", "boolean"] = "string"
    default: str | int | float | bool | None = None
    description: str | None = None


def _ref_or_inline(value: Any) -> str:
    return "ref" if isinstance(value, str) else "inline"


# A pipeline list entry: the name of another document, or an inline definition with `name`.
ModelEntry = Annotated[
    Annotated[Name, Tag("ref")] | Annotated[ModelSpec, Tag("inline")],
    Discriminator(_ref_or_inline),
]
ServiceEntry = Annotated[
    Annotated[Name, Tag("ref")] | Annotated[ServiceSpec, Tag("inline")],
    Discriminator(_ref_or_inline),
]
ChannelEntry = Annotated[
    Annotated[Name, Tag("ref")] | Annotated[ChannelSpec, Tag("inline")],
    Discriminator(_ref_or_inline),
]
FlowEntry = Annotated[
    Annotated[Name, Tag("ref")] | Annotated[FlowSpec, Tag("inline")],
    Discriminator(_ref_or_inline),
]

PARAMETER_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]*$"


class PipelineSpec(IRModel):
    """A scoring pipeline: its parameters and its parts, inline or by name.

    An omitted list means every document of that kind in the IR belongs to the pipeline.
    """

    parameters: dict[Annotated[str, Field(pattern=PARAMETER_NAME)], ParameterSpec] = Field(
        default_factory=dict
    )
    models: list[ModelEntry] | None = None
    scoring_services: list[ServiceEntry] | None = None
    data_channels: list[ChannelEntry] | None = None
    scoring_flows: list[FlowEntry] | None = None


class Metadata(IRModel):
    """`metadata`: the document's name, and optional labels and annotations."""

    name: Name
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class _Document(IRModel):
    api_version: Literal["tekscore.dev/v1"]
    metadata: Metadata

    @model_validator(mode="after")
    def _no_name_in_spec(self) -> _Document:
        spec = getattr(self, "spec", None)
        if getattr(spec, "name", None) is not None:
            raise ValueError("spec.name is only for inline pipeline entries: use metadata.name")
        return self


class ScoringPipelineDoc(_Document):
    """`kind: ScoringPipeline`."""

    kind: Literal["ScoringPipeline"]
    spec: PipelineSpec


class ModelDoc(_Document):
    """`kind: Model`."""

    kind: Literal["Model"]
    spec: ModelSpec


class ScoringServiceDoc(_Document):
    """`kind: ScoringService`."""

    kind: Literal["ScoringService"]
    spec: ServiceSpec


class DataChannelDoc(_Document):
    """`kind: DataChannel`."""

    kind: Literal["DataChannel"]
    spec: ChannelSpec


class ScoringFlowDoc(_Document):
    """`kind: ScoringFlow`."""

    kind: Literal["ScoringFlow"]
    spec: FlowSpec


Document = Annotated[
    ScoringPipelineDoc | ModelDoc | ScoringServiceDoc | DataChannelDoc | ScoringFlowDoc,
    Field(discriminator="kind"),
]
"""Any IR document, chosen by its `kind`."""

KINDS: dict[str, type[_Document]] = {
    "ScoringPipeline": ScoringPipelineDoc,
    "Model": ModelDoc,
    "ScoringService": ScoringServiceDoc,
    "DataChannel": DataChannelDoc,
    "ScoringFlow": ScoringFlowDoc,
}
