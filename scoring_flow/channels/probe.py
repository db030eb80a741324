"""Looking at a channel without running a flow: `verify` checks that it can be used (the file
is readable, the S3 object or bucket reachable with the channel's credentials, the Kafka topic
exists, the HTTP port free), `sample` reads its first records, decoded and checked against its
schema — what `fastscore stream verify` and `fastscore stream sample` did.

Does I/O (files, S3, Kafka, a socket) through the connectors of this package. A problem is a
`ChannelError` (or `SecretError`) whose message says what failed; nothing is written: a sample
of a Kafka topic joins no consumer group and commits nothing.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

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
from scoring_flow.channels import ChannelContext, make_source
from scoring_flow.errors import ChannelError, SchemaViolation, SinkError, SourceError
from scoring_flow.httpserver import bind_host
from scoring_flow.items import Item
from scoring_flow.schema_check import violation


async def verify(spec: ChannelSpec) -> str:
    """What was checked, in a sentence; `ChannelError` when the channel cannot be used."""
    if isinstance(spec, FileChannel):
        return await asyncio.to_thread(_verify_file, spec)
    if isinstance(spec, S3Channel):
        return await asyncio.to_thread(_verify_s3, spec)
    if isinstance(spec, KafkaChannel):
        return await _verify_kafka(spec)
    if isinstance(spec, HttpChannel):
        return _verify_port(spec)
    if isinstance(spec, InlineChannel):
        return f"{len(spec.config.records)} inline records"
    if isinstance(spec, SampleDataChannel):
        return await _verify_test_data(spec)
    assert isinstance(spec, DiscardChannel)
    return "drops every record"


def _verify_file(spec: FileChannel) -> str:
    path = Path(spec.config.path)
    if spec.direction == "source":
        if not path.is_file():
            raise SourceError("file", f"{path} does not exist or is not a file")
        if not os.access(path, os.R_OK):
            raise SourceError("file", f"{path} is not readable")
        return f"{path} is readable ({path.stat().st_size} bytes)"
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise SinkError("file", f"{path}: cannot write into {folder}")
    return f"{path} can be written (in {folder})"


def _verify_s3(spec: S3Channel) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    from scoring_flow.channels.s3 import describe_error, make_client

    cfg = spec.config
    where = f"s3://{cfg.bucket}/{cfg.key}"
    try:
        client = make_client(spec)
        if spec.direction == "source":
            head = client.head_object(Bucket=cfg.bucket, Key=cfg.key)
            return f"{where} is reachable ({head.get('ContentLength', '?')} bytes)"
        client.head_bucket(Bucket=cfg.bucket)
        return f"bucket {cfg.bucket} is reachable: {where} can be written"
    except (BotoCoreError, ClientError) as exc:
        error = SourceError if spec.direction == "source" else SinkError
        raise error("s3", f"{where}: {describe_error(exc)}") from exc


async def _verify_kafka(spec: KafkaChannel) -> str:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaError

    from scoring_flow.channels.kafka import client_options

    cfg = spec.config
    error = SourceError if spec.direction == "source" else SinkError
    consumer = AIOKafkaConsumer(request_timeout_ms=15_000, **client_options(spec))
    try:
        await consumer.start()
        topics = await consumer.topics()
        partitions = consumer.partitions_for_topic(cfg.topic)
    except KafkaError as exc:
        raise error("kafka", f"{cfg.bootstrap_servers}: {exc}") from exc
    finally:
        await consumer.stop()
    if cfg.topic not in topics:
        known = ", ".join(sorted(t for t in topics if not t.startswith("__"))) or "(none)"
        raise error(
            "kafka",
            f"topic {cfg.topic!r} does not exist at {cfg.bootstrap_servers}; topics: {known}",
        )
    return (
        f"topic {cfg.topic} exists at {cfg.bootstrap_servers} ({len(partitions or ())} partitions)"
    )


async def _verify_test_data(spec: SampleDataChannel) -> str:
    import httpx

    from scoring_flow.channels.testdata import TIMEOUT

    base = spec.config.url.rstrip("/")
    error = SourceError if spec.direction == "source" else SinkError
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.get(f"{base}/")
            response.raise_for_status()
            index = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise error("test-data", f"{base}: {exc!r}") from exc
    name = spec.config.name
    if spec.direction == "source":
        if name not in index["samples"]:
            known = ", ".join(index["samples"]) or "none"
            raise error("test-data", f"{base} has no sample {name} (samples: {known})")
        return f"sample {name} is served by {base}"
    return f"{base} answers: sink {name} can be written"


def _verify_port(spec: HttpChannel) -> str:
    host = bind_host()
    with socket.socket() as sock:
        try:
            sock.bind((host, spec.config.port))
        except OSError as exc:
            raise SourceError("http", f"port {spec.config.port} on {host}: {exc}") from exc
    return f"port {spec.config.port} on {host} is free for POST {spec.config.path}"


async def sample(spec: ChannelSpec, count: int) -> list[Item]:
    """The first `count` records of a source, each decoded and checked against the channel's
    schema (an item that failed carries why)."""
    if spec.direction != "source":
        raise ChannelError(spec.type, "a sink has no records to sample: sample a source")
    if isinstance(spec, HttpChannel):
        raise ChannelError("http", "an http source has records only while requests come")
    source = make_source(spec, ChannelContext(flow="sample", mode="batch", sample=True))
    items: list[Item] = []
    await source.open()
    try:
        batches = source.batches(count)
        async for batch in batches:
            items += batch.items
            if len(items) >= count:
                break
        await _close(batches)
    finally:
        await source.close()
    schema = spec.format.schema_
    for item in items[:count]:
        if schema and item.alive:
            reason = violation(item.results[0], schema)
            if reason:
                item.fail(SchemaViolation(reason, step="schema:input"))
    return items[:count]


async def _close(batches: Any) -> None:
    aclose = getattr(batches, "aclose", None)
    if aclose is not None:
        await aclose()
