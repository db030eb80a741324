"""Data-channel connectors, one module per type, behind the `Source`/`Sink` protocols of `base`.

`make_source` / `make_sink` only build objects (no I/O); connecting happens in `open()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ir.channels import (
    ChannelSpec,
    DiscardChannel,
    FileChannel,
    HttpChannel,
    InlineChannel,
    KafkaChannel,
    S3Channel,
    SampleDataChannel,
)
from scoring_flow.channels.base import ShardFilter, Sink, Source, SourceBatch, shard_name
from scoring_flow.errors import ConfigError

__all__ = [
    "ChannelContext",
    "ShardFilter",
    "Sink",
    "Source",
    "SourceBatch",
    "make_sink",
    "make_source",
]


@dataclass(frozen=True, kw_only=True)
class ChannelContext:
    """What connectors need to know about the flow they serve."""

    flow: str
    mode: str
    shard_index: int = 0
    shards: int = 1
    http_port: int | None = None
    queue_size: int = 4
    sample: bool = False
    """Reading a few records to show them (`tekscore channel sample`): a Kafka source joins no
    consumer group and commits nothing."""


def make_source(spec: ChannelSpec, ctx: ChannelContext) -> Source:
    """The source for a channel spec."""
    if spec.direction != "source":
        raise ConfigError(f"channel {spec.name or spec.type!r} is a sink, not a source")
    shard = ShardFilter(index=ctx.shard_index, shards=ctx.shards)
    if isinstance(spec, FileChannel):
        from scoring_flow.channels.file import FileSource

        return FileSource(spec, shard=shard)
    if isinstance(spec, S3Channel):
        from scoring_flow.channels.s3 import S3Source

        return S3Source(spec, shard=shard)
    if isinstance(spec, KafkaChannel):
        from scoring_flow.channels.kafka import KafkaSource

        return KafkaSource(spec, flow=ctx.flow, mode=ctx.mode, sample=ctx.sample)
    if isinstance(spec, HttpChannel):
        from scoring_flow.channels.http import HttpSource

        port = ctx.http_port if ctx.http_port is not None else spec.config.port
        return HttpSource(
            path=spec.config.path,
            port=port,
            queue_size=ctx.queue_size,
            fastscore=bool(spec.config.fastscore),
            host=spec.config.host,
        )
    if isinstance(spec, InlineChannel):
        from scoring_flow.channels.inline import InlineSource

        return InlineSource(spec, shard=shard)
    if isinstance(spec, SampleDataChannel):
        from scoring_flow.channels.testdata import SampleDataSource

        return SampleDataSource(spec, shard=shard)
    raise ConfigError(f"a {spec.type} channel cannot be a source")


def make_sink(spec: ChannelSpec, ctx: ChannelContext, *, dead_letter: bool = False) -> Sink:
    """The sink for a channel spec; `dead_letter` when it takes the flow's dead-letter entries
    (`{"record", "reason", "step", "flow"}`), which a keyed Kafka sink keys by their record.
    A file, S3 or test-data sink of a sharded flow writes one file, object or sink per shard
    (`shard_name`)."""
    if spec.direction != "sink":
        raise ConfigError(f"channel {spec.name or spec.type!r} is a source, not a sink")
    if isinstance(spec, FileChannel):
        from scoring_flow.channels.file import FileSink

        path = shard_name(spec.config.path, index=ctx.shard_index, shards=ctx.shards)
        return FileSink(
            spec.model_copy(update={"config": spec.config.model_copy(update={"path": path})})
        )
    if isinstance(spec, S3Channel):
        from scoring_flow.channels.s3 import S3Sink

        key = shard_name(spec.config.key, index=ctx.shard_index, shards=ctx.shards)
        return S3Sink(
            spec.model_copy(update={"config": spec.config.model_copy(update={"key": key})})
        )
    if isinstance(spec, KafkaChannel):
        from scoring_flow.channels.kafka import KafkaSink

        return KafkaSink(spec, dead_letter=dead_letter)
    if isinstance(spec, DiscardChannel):
        from scoring_flow.channels.inline import DiscardSink

        return DiscardSink()
    if isinstance(spec, SampleDataChannel):
        from scoring_flow.channels.testdata import SampleDataSink

        name = shard_name(spec.config.name, index=ctx.shard_index, shards=ctx.shards)
        return SampleDataSink(
            spec.model_copy(update={"config": spec.config.model_copy(update={"name": name})})
        )
    raise ConfigError(f"a {spec.type} channel cannot be a sink")
