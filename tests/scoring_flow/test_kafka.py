"""Kafka source and sink against a real Kafka-protocol broker (tansu) and the real iris service:
a batch flow that ends at the topic's end, and a streaming flow SIGKILLed mid-stream and
restarted in the same consumer group with no record lost (at-least-once: every input id is in
the output), then stopped by SIGTERM with exit 0 and its offsets committed."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from tests.scoring_flow.conftest import (
    SCORE_STEP,
    FlowLauncher,
    ServeModel,
    assert_invariant,
    iris_services,
    read_jsonl,
    wait_until,
)


async def _create(bootstrap: str, *topics: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(t, num_partitions=2, replication_factor=1) for t in topics]
        )
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, json.dumps(r).encode()) for r in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record of the topic. (tansu answers ListOffsets wrongly, so the end is the high
    watermark the fetch responses carry.)"""
    return (await _scan(bootstrap, topic))[0]


async def _scan(bootstrap: str, topic: str) -> tuple[list[dict[str, Any]], dict[int, int]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in (0, 1)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out: list[dict[str, Any]] = []
        while True:
            got = await consumer.getmany(timeout_ms=300)
            out += [json.loads(m.value) for msgs in got.values() for m in msgs]
            marks = {tp: consumer.highwater(tp) for tp in parts}
            positions = {tp: await consumer.position(tp) for tp in parts}
            if not got and all(
                marks[tp] is not None and positions[tp] >= marks[tp] for tp in parts
            ):
                return out, {tp.partition: positions[tp] for tp in parts}
    finally:
        await consumer.stop()


async def _lag(bootstrap: str, topic: str, group: str) -> int:
    """Messages of the topic not yet committed by the group."""
    _, ends = await _scan(bootstrap, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        lag = 0
        for partition, end in ends.items():
            committed = await consumer.committed(TopicPartition(topic, partition))
            lag += end - (committed or 0)
        return lag
    finally:
        await consumer.stop()


def kafka_channel(bootstrap: str, topic: str, direction: str, group: str | None = None) -> dict:
    config: dict[str, Any] = {"bootstrapServers": bootstrap, "topic": topic}
    if group:
        config["group"] = group
    return {"type": "kafka", "direction": direction, "config": config}


def test_kafka_batch_flow_reads_to_the_end(
    iris: Path, service: ServeModel, kafka: str, flows: FlowLauncher
) -> None:
    tag = uuid.uuid4().hex[:8]
    src, dst = f"in-{tag}", f"out-{tag}"
    asyncio.run(_create(kafka, src, dst))
    records = read_jsonl(iris / "input.jsonl")[:300]
    asyncio.run(_produce(kafka, src, records))
    config = {
        "name": "kafka-batch",
        "mode": "batch",
        "source": kafka_channel(kafka, src, "source", group=f"g-{tag}"),
        "sink": kafka_channel(kafka, dst, "sink"),
        "steps": [SCORE_STEP],
        "services": iris_services(service.url),
        "batchSize": 50,
    }
    run = flows.run(config)
    assert run.returncode == 0, run.log()
    out = asyncio.run(_read_all(kafka, dst))
    assert sorted(r["id"] for r in out) == sorted(r["id"] for r in records)
    assert all("prediction" in r for r in out)
    done = run.event("flow completed")
    assert done["records_in"] == 300 and done["records_out"] == 300
    assert asyncio.run(_lag(kafka, src, f"g-{tag}")) == 0


def test_streaming_flow_killed_and_restarted_loses_nothing(
    iris: Path, service: ServeModel, kafka: str, flows: FlowLauncher, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    src, dst, group = f"in-{tag}", f"out-{tag}", f"g-{tag}"
    asyncio.run(_create(kafka, src, dst))
    records = read_jsonl(iris / "input.jsonl")
    asyncio.run(_produce(kafka, src, records))
    slow = tmp_path / "slow.py"
    slow.write_text(
        "import time\n\ndef transform(records):\n    time.sleep(0.1)\n    return records\n"
    )
    config = {
        "name": "kafka-stream",
        "mode": "streaming",
        "source": kafka_channel(kafka, src, "source", group=group),
        "sink": kafka_channel(kafka, dst, "sink"),
        "steps": [{"type": "python", "uri": slow.as_uri()}, SCORE_STEP],
        "services": iris_services(service.url),
        "batchSize": 20,
        "concurrency": 2,
    }
    env = {"TEKSCORE_PROGRESS_INTERVAL": "0.2"}
    first = flows.start(config, env=env)
    wait_until(
        lambda: any(
            e.get("event") == "flow progress" and e["records_out"] >= 60 for e in first.events()
        ),
        what="first run scored some records",
    )
    first.proc.send_signal(signal.SIGKILL)
    first.wait()
    partial = asyncio.run(_read_all(kafka, dst))
    assert 0 < len(partial) < len(records)

    second = flows.start(config, env=env)
    wanted = {r["id"] for r in records}
    wait_until(
        lambda: wanted <= {r["id"] for r in asyncio.run(_read_all(kafka, dst))},
        timeout=120,
        what="every input id in the output",
    )
    second.proc.send_signal(signal.SIGTERM)
    assert second.wait() == 0, second.log()
    assert second.event("flow stopping")["signal"] == "SIGTERM"
    done = second.event("flow completed")
    assert_invariant(done)
    assert asyncio.run(_lag(kafka, src, group)) == 0
    out = asyncio.run(_read_all(kafka, dst))
    assert {r["id"] for r in out} == wanted
    assert all("prediction" in r for r in out)
