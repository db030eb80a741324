"""Data channels: where a flow's records come from and go to
(file, s3, kafka, http, inline, discard, test-data).

Pure data, no I/O. A channel is `direction` + `type` + `format` + a `config` whose shape depends
on `type`; credentials appear only as `SecretRef`s.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from ir.keys import KeyTemplate
from ir.types import IRModel, Name, Schema, SecretRef

Direction = Literal["source", "sink"]
Encoding = Literal["jsonl", "csv", "avro"]


class Format(IRModel):
    """How records are encoded on the channel, and the schema they are checked against."""

    encoding: Encoding = "jsonl"
    schema_: Schema | None = Field(default=None, alias="schema")


class FileConfig(IRModel):
    """A local (or mounted) file; a relative path resolves against the IR file's folder."""

    path: str = Field(min_length=1)
    loop: bool | None = Field(
        default=None,
        description="Sources: start again at the file's start when it ends (streaming flows).",
    )


class S3Config(IRModel):
    """An object in an S3-compatible store."""

    bucket: str = Field(min_length=3, max_length=63)
    key: str = Field(min_length=1)
    endpoint_url: str | None = Field(default=None, description="For S3-compatible servers.")
    region: str | None = None
    access_key_id: SecretRef | None = None
    secret_access_key: SecretRef | None = None
    part_size_mb: int = Field(default=8, ge=5, le=5120, description="Multipart upload part size.")
    loop: bool | None = Field(
        default=None,
        description="Sources: read the object again from its start when it ends (streaming).",
    )


class KafkaConfig(IRModel):
    """A Kafka topic; sources read it as a consumer group, sinks produce with acks=all."""

    bootstrap_servers: str = Field(min_length=1, description="host:port[,host:port...]")
    topic: str = Field(min_length=1, max_length=249)
    group: str | None = Field(default=None, description="Consumer group (sources).")
    start_from: Literal["earliest", "latest"] = "earliest"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    username: SecretRef | None = None
    password: SecretRef | None = None
    key: str | None = Field(
        default=None,
        description="Sinks: the message key, a field name or a template of fields "
        "('{region}/{customer_id}'). Messages with the same key go to the same partition, "
        "so their order is kept (docs/scoring-flow.md).",
    )

    @field_validator("key")
    @classmethod
    def _key_template(cls, value: str | None) -> str | None:
        if value is not None:
            KeyTemplate.parse(value)
        return value


class HttpConfig(IRModel):
    """The flow serves `POST {path}` and answers each request with its scored records."""

    port: int = Field(default=8080, ge=1, le=65535)
    path: str = Field(default="/score", pattern=r"^/")
    fastscore: bool | None = Field(
        default=None,
        description="Also serve FastScore's round trip, POST /2/active/model/roundtrip/0/1 "
        "(JSON lines in, JSON lines out).",
    )
    host: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="The address to listen on. Default: all interfaces in a pod (Kubernetes), "
        "loopback on the local backend, where another needs the server's --allow-bind.",
    )


class InlineConfig(IRModel):
    """Records written inside the IR (tests and examples)."""

    records: list[dict[str, Any]]
    loop: bool | None = Field(
        default=None, description="Start again at the first record (streaming)."
    )


class DiscardConfig(IRModel):
    """Drops every record (a sink for flows whose output does not matter)."""


class SampleDataConfig(IRModel):
    """A data set of the platform's test-data server (the `test-data` sub-chart,
    docs/scoring-flow.md): sources read its sample `name`, sinks leave what they write there."""

    url: str = Field(
        pattern=r"^https?://[^/?#]+(/[^?#]*)?$",
        max_length=2048,
        description="The test-data server's base URL, e.g. http://tekscore-test-data.ns.svc:8080.",
    )
    name: Name = Field(
        description="Sources: the sample to read; sinks: the name the flow's output is kept under."
    )
    loop: bool | None = Field(
        default=None, description="Sources: read the sample again from its start (streaming)."
    )


class _Channel(IRModel):
    name: Name | None = Field(default=None, description="Only in inline pipeline entries.")
    direction: Direction
    format: Format = Field(default_factory=Format)

    @model_validator(mode="after")
    def _avro_sink_has_schema(self) -> _Channel:
        if self.direction == "sink" and self.format.encoding == "avro" and not self.format.schema_:
            raise ValueError("an avro sink needs format.schema to write its container file")
        if self.direction == "sink" and getattr(getattr(self, "config", None), "loop", False):
            raise ValueError("loop is for sources (a sink does not start again)")
        return self


class FileChannel(_Channel):
    """`type: file`."""

    type: Literal["file"]
    config: FileConfig


class S3Channel(_Channel):
    """`type: s3`."""

    type: Literal["s3"]
    config: S3Config


class KafkaChannel(_Channel):
    """`type: kafka`."""

    type: Literal["kafka"]
    config: KafkaConfig

    @model_validator(mode="after")
    def _key_on_sinks_only(self) -> KafkaChannel:
        if self.format.encoding in ("avro", "csv") and not self.format.schema_:
            raise ValueError(
                f"{self.format.encoding} messages need format.schema: a message carries no "
                "field names (jsonl messages do)"
            )
        if self.config.key is None:
            return self
        if self.direction != "sink":
            raise ValueError("config.key is for sinks: a source reads the keys it is given")
        schema = self.format.schema_
        if schema:
            known = {f.name for f in schema}
            unknown = [f for f in KeyTemplate.parse(self.config.key).fields if f not in known]
            if unknown:
                raise ValueError(
                    f"config.key names {', '.join(map(repr, unknown))}, not in format.schema "
                    f"({', '.join(sorted(known))})"
                )
        return self


class HttpChannel(_Channel):
    """`type: http` (sources only)."""

    type: Literal["http"]
    config: HttpConfig = Field(default_factory=HttpConfig)

    @model_validator(mode="after")
    def _source_only(self) -> HttpChannel:
        if self.direction != "source":
            raise ValueError("http channels are sources only: the flow answers each request")
        return self


class InlineChannel(_Channel):
    """`type: inline` (sources only)."""

    type: Literal["inline"]
    config: InlineConfig

    @model_validator(mode="after")
    def _source_only(self) -> InlineChannel:
        if self.direction != "source":
            raise ValueError("inline channels are sources only")
        return self


class DiscardChannel(_Channel):
    """`type: discard` (sinks only)."""

    type: Literal["discard"]
    config: DiscardConfig = Field(default_factory=DiscardConfig)

    @model_validator(mode="after")
    def _sink_only(self) -> DiscardChannel:
        if self.direction != "sink":
            raise ValueError("discard channels are sinks only")
        return self


class SampleDataChannel(_Channel):
    """`type: test-data`."""

    type: Literal["test-data"]
    config: SampleDataConfig


ChannelSpec = Annotated[
    FileChannel
    | S3Channel
    | KafkaChannel
    | HttpChannel
    | InlineChannel
    | DiscardChannel
    | SampleDataChannel,
    Field(discriminator="type"),
]
"""The spec of a DataChannel, chosen by its `type`."""
