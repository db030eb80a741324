"""`type: kafka` channels: a topic read by a consumer group, or written with acks=all.

Does network I/O with aiokafka (clients made in `open()`). At-least-once: the source disables
auto-commit and commits a batch's offsets only when the runner calls `commit(batch)`, which it
does after the sink (and dead-letter channel) hold the batch; a flow killed before that sees the
batch again after a restart. One record per message (`MessageCodec`). In `batch` mode the source
ends when it has reached the end offsets of its assigned partitions; in `streaming` mode it runs
until `stop()`. Shards of a flow share the consumer group (default group: `tekscore-<flow>`);
each process logs the partitions the group assigns it (`kafka partitions assigned`).
A sink with `config.key` gives each message the key rendered from its record (`ir.keys`), so
the producer's partitioner (murmur2 of the key, as the Java client) sends every message of a key
to one partition, where Kafka keeps their order; on a dead-letter channel the key comes from the
failed input record, and a record without the key's fields goes without a key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from ir.channels import KafkaChannel
from ir.keys import KeyTemplate
from scoring_flow.channels.base import SourceBatch, to_item
from scoring_flow.codecs import UNENCODABLE, MessageCodec, Rejected, unencodable
from scoring_flow.errors import SinkError, SourceError
from scoring_flow.secrets import resolve_optional
from scoring_flow.types import Record

log = structlog.get_logger("scoring_flow.kafka")
POLL_MS = 500


def client_options(spec: KafkaChannel) -> dict[str, Any]:
    """Connection options shared by consumers and producers (credentials from secretRefs)."""
    cfg = spec.config
    options: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "security_protocol": cfg.security_protocol,
    }
    if cfg.sasl_mechanism:
        options["sasl_mechanism"] = cfg.sasl_mechanism
        options["sasl_plain_username"] = resolve_optional(cfg.username)
        options["sasl_plain_password"] = resolve_optional(cfg.password)
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context()
    return options


class _LogAssignment(ConsumerRebalanceListener):  # type: ignore[misc]
    """Logs each partition assignment of the group (which partitions this process reads now)."""

    def __init__(self, topic: str, group: str | None) -> None:
        self.topic, self.group = topic, group

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        partitions = sorted(tp.partition for tp in assigned)
        log.info(
            "kafka partitions assigned", topic=self.topic, group=self.group, partitions=partitions
        )


class KafkaSource:
    """Consumes a topic as part of a consumer group, committing after the sink."""

    kind = "kafka"

    def __init__(self, spec: KafkaChannel, *, flow: str, mode: str, sample: bool = False) -> None:
        self.spec = spec
        self.group: str | None = None if sample else (spec.config.group or f"tekscore-{flow}")
        self.mode = mode
        self.codec = MessageCodec(spec.format.encoding, spec.format.schema_)
        self._consumer: AIOKafkaConsumer | None = None
        self._stopped = asyncio.Event()
        self._ordinal = 0

    async def open(self) -> None:
        """Join the consumer group."""
        cfg = self.spec.config
        self._consumer = AIOKafkaConsumer(
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset=cfg.start_from,
            **client_options(self.spec),
        )
        self._consumer.subscribe([cfg.topic], listener=_LogAssignment(cfg.topic, self.group))
        try:
            await self._consumer.start()
        except KafkaError as exc:
            await self._consumer.stop()
            raise SourceError("kafka", f"{cfg.bootstrap_servers} {cfg.topic}: {exc}") from exc
        log.info("kafka consumer started", topic=cfg.topic, group=self.group)

    async def _at_end(self) -> bool:
        """Whether every assigned partition is read up to its high watermark (taken from the
        fetch responses; ListOffsets only when a partition was never fetched)."""
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        if not assigned:
            return False
        for tp in assigned:
            mark = self._consumer.highwater(tp)
            if mark is None:
                mark = (await self._consumer.end_offsets([tp]))[tp]
            if await self._consumer.position(tp) < mark:
                return False
        return True

    async def batches(self, size: int) -> AsyncIterator[SourceBatch]:
        """Batches of messages; ends at the topic's end (batch mode) or on `stop()`."""
        assert self._consumer is not None
        while not self._stopped.is_set():
            try:
                got = await self._consumer.getmany(timeout_ms=POLL_MS, max_records=size)
            except KafkaError as exc:
                raise SourceError("kafka", str(exc)) from exc
            if not got:
                if self.mode == "batch" and await self._at_end():
                    return
                continue
            items = []
            offsets: dict[TopicPartition, int] = {}
            for tp, messages in got.items():
                for message in messages:
                    items.append(to_item(self._ordinal, self.codec.decode(message.value)))
                    self._ordinal += 1
                    offsets[tp] = message.offset + 1
            yield SourceBatch(items=items, token=offsets)

    async def commit(self, batch: SourceBatch) -> None:
        """Commit the batch's offsets."""
        if self._consumer is None or not batch.token:
            return
        try:
            await self._consumer.commit(batch.token)
        except KafkaError as exc:
            raise SourceError("kafka", f"cannot commit offsets: {exc}") from exc

    def stop(self) -> None:
        """Stop polling after the current batch."""
        self._stopped.set()

    async def close(self) -> None:
        """Leave the group."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


class KafkaSink:
    """Produces one message per record with acks=all; `write` returns once all are acked."""

    kind = "kafka"

    def __init__(self, spec: KafkaChannel, *, dead_letter: bool = False) -> None:
        self.spec = spec
        self.codec = MessageCodec(spec.format.encoding, spec.format.schema_)
        self.key = KeyTemplate.parse(spec.config.key) if spec.config.key else None
        self.dead_letter = dead_letter
        self._producer: AIOKafkaProducer | None = None

    def key_of(self, record: Record) -> bytes | None:
        """The message key of `record` (None without `config.key`, or when the record lacks one
        of its fields: the flow dead-letters such records before the sink, see `Pipeline`)."""
        if self.key is None:
            return None
        if self.dead_letter:  # a dead-letter entry: the key of the failed input record
            original = record.get("record")
            record = original if isinstance(original, dict) else {}
        if self.key.missing(record):
            return None
        return self.key.render(record).encode("utf-8")

    async def open(self) -> None:
        """Connect the producer."""
        self._producer = AIOKafkaProducer(acks="all", linger_ms=5, **client_options(self.spec))
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self._producer.stop()
            cfg = self.spec.config
            raise SinkError("kafka", f"{cfg.bootstrap_servers} {cfg.topic}: {exc}") from exc

    async def write(self, records: list[Record]) -> Rejected:
        """Send the records that fit the encoding (the others come back by index) and wait until
        the broker acknowledged every one."""
        assert self._producer is not None
        topic = self.spec.config.topic
        messages: list[tuple[bytes, bytes | None]] = []
        rejected: Rejected = {}
        for i, record in enumerate(records):
            try:
                messages.append((self.codec.encode(record), self.key_of(record)))
            except UNENCODABLE as exc:
                rejected[i] = unencodable(self.spec.format.encoding, exc)
        try:
            futures = [await self._producer.send(topic, m, key=k) for m, k in messages]
            if futures:
                await asyncio.gather(*futures)
        except KafkaError as exc:
            raise SinkError("kafka", f"cannot produce to {topic}: {exc}") from exc
        return rejected

    async def close(self) -> None:
        """Flush and disconnect."""
        if self._producer is not None:
            await self._producer.flush()
            await self._producer.stop()
            self._producer = None

    async def abort(self) -> None:
        """Disconnect (what was acknowledged stays: Kafka is at-least-once here)."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
