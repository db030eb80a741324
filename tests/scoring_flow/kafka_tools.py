"""Kafka helpers of the scoring-flow tests, against the tansu broker of `conftest.kafka`: create
topics, produce records, read a whole topic back (each message with its partition and key),
and a consumer group's lag. tansu answers ListOffsets wrongly, so the end of a partition is the
high watermark the fetch responses carry."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition


@dataclass(frozen=True)
class Message:
    """One message read back: where it is, its key, and its record."""

    partition: int
    offset: int
    key: bytes | None
    record: dict[str, Any]


async def create_topics(bootstrap: str, *topics: str, partitions: int = 2) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics]
        )
    finally:
        await admin.close()


async def produce(
    bootstrap: str, topic: str, records: list[dict[str, Any]], *, partition: int | None = None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, json.dumps(r).encode(), partition=partition) for r in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def scan(bootstrap: str, topic: str) -> tuple[list[Message], dict[int, int]]:
    """Every message of every partition of `topic`, and each partition's end offset."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # metadata
        numbers = sorted(consumer.partitions_for_topic(topic) or ())
        assert numbers, f"topic {topic} has no partitions"
        parts = [TopicPartition(topic, p) for p in numbers]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out: list[Message] = []
        while True:
            got = await consumer.getmany(timeout_ms=300)
            out += [
                Message(m.partition, m.offset, m.key, json.loads(m.value))
                for msgs in got.values()
                for m in msgs
            ]
            marks = {tp: consumer.highwater(tp) for tp in parts}
            positions = {tp: await consumer.position(tp) for tp in parts}
            if not got and all(
                marks[tp] is not None and positions[tp] >= marks[tp] for tp in parts
            ):
                return out, {tp.partition: positions[tp] for tp in parts}
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record of the topic."""
    return [m.record for m in (await scan(bootstrap, topic))[0]]


async def lag(bootstrap: str, topic: str, group: str) -> int:
    """Messages of the topic not yet committed by the group."""
    _, ends = await scan(bootstrap, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        behind = 0
        for partition, end in ends.items():
            committed = await consumer.committed(TopicPartition(topic, partition))
            behind += end - (committed or 0)
        return behind
    finally:
        await consumer.stop()


def kafka_channel(
    bootstrap: str, topic: str, direction: str, group: str | None = None, **config: Any
) -> dict[str, Any]:
    """A kafka channel spec as a flow config holds it."""
    body: dict[str, Any] = {"bootstrapServers": bootstrap, "topic": topic, **config}
    if group:
        body["group"] = group
    return {"type": "kafka", "direction": direction, "config": body}
