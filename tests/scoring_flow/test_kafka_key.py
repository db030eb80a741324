"""Kafka sink message keys on the real tansu broker, with a multi-partition output topic: every
message of a key lands in one partition and in the order the flow read it; a template key
renders from several fields; a record without the key's fields is dead-lettered with the reason
(never produced without its key); a keyed dead-letter channel keys entries by their record.
And undecodable lines reach the dead letter without their line ending."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections import defaultdict
from pathlib import Path

from scoring_flow.codecs import decode
from scoring_flow.types import BadRecord
from tests.scoring_flow.conftest import (
    SCORE_STEP,
    FlowLauncher,
    ServeModel,
    assert_invariant,
    iris_services,
    read_jsonl,
)
from tests.scoring_flow.kafka_tools import create_topics, kafka_channel, produce, scan

CUSTOMERS = [f"customer-{n}" for n in range(7)]


def test_a_keyed_sink_keeps_each_keys_records_in_one_partition_in_order(
    iris: Path, service: ServeModel, kafka: str, flows: FlowLauncher
) -> None:
    tag = uuid.uuid4().hex[:8]
    src, dst = f"in-{tag}", f"out-{tag}"
    asyncio.run(create_topics(kafka, src, partitions=1))  # one input order to keep
    asyncio.run(create_topics(kafka, dst, partitions=4))
    records = [
        {**r, "customer": CUSTOMERS[i % len(CUSTOMERS)], "seq": i}
        for i, r in enumerate(read_jsonl(iris / "input.jsonl")[:420])
    ]
    asyncio.run(produce(kafka, src, records))
    config = {
        "name": "keyed",
        "mode": "batch",
        "source": kafka_channel(kafka, src, "source", group=f"g-{tag}"),
        "sink": kafka_channel(kafka, dst, "sink", key="customer"),
        "steps": [SCORE_STEP],
        "services": iris_services(service.url),
        "batchSize": 16,
        "concurrency": 3,
    }
    run = flows.run(config)
    assert run.returncode == 0, run.log()

    messages, _ = asyncio.run(scan(kafka, dst))
    assert sorted(m.record["seq"] for m in messages) == list(range(len(records)))
    partitions: dict[str, set[int]] = defaultdict(set)
    for m in messages:
        assert m.key == m.record["customer"].encode()
        partitions[m.record["customer"]].add(m.partition)
    assert all(len(p) == 1 for p in partitions.values()), partitions  # one partition per key
    assert len(set().union(*partitions.values())) > 1  # the keys do spread over partitions
    for customer in CUSTOMERS:
        in_log_order = sorted(
            (m for m in messages if m.record["customer"] == customer), key=lambda m: m.offset
        )
        seqs = [m.record["seq"] for m in in_log_order]
        assert seqs == sorted(seqs), f"{customer} out of order: {seqs}"  # input order, per key


def test_a_template_key_and_records_without_its_fields_go_to_a_keyed_dead_letter(
    iris: Path, service: ServeModel, kafka: str, flows: FlowLauncher
) -> None:
    tag = uuid.uuid4().hex[:8]
    src, dst, dead = f"in-{tag}", f"out-{tag}", f"dead-{tag}"
    asyncio.run(create_topics(kafka, src, partitions=1))
    asyncio.run(create_topics(kafka, dst, dead, partitions=3))
    good = [
        {**r, "customer": CUSTOMERS[i % 3], "region": ["eu", "us"][i % 2]}
        for i, r in enumerate(read_jsonl(iris / "input.jsonl")[:60])
    ]
    no_region = {**good[0], "id": 1000, "region": None}
    no_customer = {**good[1], "id": 1001, "customer": None, "region": None}
    unreadable = {**good[2], "id": 1002, "sepal_length": "wide"}  # fails the input schema
    asyncio.run(produce(kafka, src, [*good[:30], no_region, no_customer, unreadable, *good[30:]]))
    schema = [{"name": "sepal_length", "type": "double"}]
    source = kafka_channel(kafka, src, "source", group=f"g-{tag}")
    source["format"] = {"encoding": "jsonl", "schema": schema}
    config = {
        "name": "templated",
        "mode": "batch",
        "source": source,
        "sink": kafka_channel(kafka, dst, "sink", key="{customer}/{region}"),
        "deadLetter": kafka_channel(kafka, dead, "sink", key="customer"),
        "steps": [SCORE_STEP],
        "services": iris_services(service.url),
        "batchSize": 10,
    }
    run = flows.run(config)
    assert run.returncode == 0, run.log()
    done = run.event("flow completed")
    assert (done["records_in"], done["records_out"], done["records_failed"]) == (63, 60, 3)
    assert_invariant(done)

    out, _ = asyncio.run(scan(kafka, dst))
    assert sorted(m.record["id"] for m in out) == sorted(r["id"] for r in good)
    assert all(m.key == f"{m.record['customer']}/{m.record['region']}".encode() for m in out)

    letters = {m.record["record"]["id"]: m for m in asyncio.run(scan(kafka, dead))[0]}
    assert set(letters) == {1000, 1001, 1002}
    assert letters[1000].record["step"] == "sink:key"
    assert letters[1000].record["reason"] == (
        "message key '{customer}/{region}': field 'region' is missing"
    )
    assert letters[1000].key == no_region["customer"].encode()  # keyed by the input record
    assert letters[1001].record["step"] == "sink:key"
    assert letters[1001].key is None  # no customer to key it by: sent without a key
    assert letters[1002].record["step"] == "schema:input"
    assert letters[1002].key == unreadable["customer"].encode()


def test_undecodable_lines_are_dead_lettered_without_their_line_ending() -> None:
    text = b'{"a": 1}\r\nnot json\r\n{"b": 2}\n{broken\n[1, 2]'
    decoded = list(decode("jsonl", io.BytesIO(text), None))
    bad = [d for d in decoded if isinstance(d, BadRecord)]
    assert [b.raw for b in bad] == ["not json", "{broken", [1, 2]]
    assert [d for d in decoded if not isinstance(d, BadRecord)] == [{"a": 1}, {"b": 2}]
    assert json.dumps(bad[0].raw) == '"not json"'
