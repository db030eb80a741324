"""Kafka source and sink against a real Kafka-protocol broker (tansu) and the real iris service:
a batch flow that ends at the topic's end, and a streaming flow SIGKILLed mid-stream and
restarted in the same consumer group with no record lost (at-least-once: every input id is in
the output), then stopped by SIGTERM with exit 0 and its offsets committed."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

from tests.scoring_flow.conftest import (
    SCORE_STEP,
    FlowLauncher,
    ServeModel,
    assert_invariant,
    iris_services,
    read_jsonl,
    wait_until,
)
from tests.scoring_flow.kafka_tools import create_topics, kafka_channel, lag, produce, read_all


def test_kafka_batch_flow_reads_to_the_end(
    iris: Path, service: ServeModel, kafka: str, flows: FlowLauncher
) -> None:
    tag = uuid.uuid4().hex[:8]
    src, dst = f"in-{tag}", f"out-{tag}"
    asyncio.run(create_topics(kafka, src, dst))
    records = read_jsonl(iris / "input.jsonl")[:300]
    asyncio.run(produce(kafka, src, records))
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
    out = asyncio.run(read_all(kafka, dst))
    assert sorted(r["id"] for r in out) == sorted(r["id"] for r in records)
    assert all("prediction" in r for r in out)
    done = run.event("flow completed")
    assert done["records_in"] == 300 and done["records_out"] == 300
    assert asyncio.run(lag(kafka, src, f"g-{tag}")) == 0


def test_streaming_flow_killed_and_restarted_loses_nothing(
    iris: Path, service: ServeModel, kafka: str, flows: FlowLauncher, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    src, dst, group = f"in-{tag}", f"out-{tag}", f"g-{tag}"
    asyncio.run(create_topics(kafka, src, dst))
    records = read_jsonl(iris / "input.jsonl")
    asyncio.run(produce(kafka, src, records))
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
    partial = asyncio.run(read_all(kafka, dst))
    assert 0 < len(partial) < len(records)

    second = flows.start(config, env=env)
    wanted = {r["id"] for r in records}
    wait_until(
        lambda: wanted <= {r["id"] for r in asyncio.run(read_all(kafka, dst))},
        timeout=120,
        what="every input id in the output",
    )
    second.proc.send_signal(signal.SIGTERM)
    assert second.wait() == 0, second.log()
    assert second.event("flow stopping")["signal"] == "SIGTERM"
    done = second.event("flow completed")
    assert_invariant(done)
    assert asyncio.run(lag(kafka, src, group)) == 0
    out = asyncio.run(read_all(kafka, dst))
    assert {r["id"] for r in out} == wanted
    assert all("prediction" in r for r in out)
