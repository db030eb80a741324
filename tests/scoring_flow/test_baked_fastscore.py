"""`tekscore baked` run as a FastScore user runs a baked engine: the environment exactly as the
FastScore baked-engine page writes it (`MODEL`, `SCHEMAS=inputsch:...;outputsch:...`,
`STREAMS=0:/assets/rest.json;1:/assets/kafka.json`), verbatim stream descriptors, a
`begin`/`action` model bound to Avro schemas of every type family by its
`# fastscore.schema.N` annotations. Real processes throughout: the engine and its scoring
service, a tansu Kafka broker, a moto S3 server.

- REST round trip (FastScore's path and ours) -> Kafka; a schema-violating record never reaches
  the model and is dead-lettered with its reason;
- a file with `Loop` read again and again until SIGTERM -> a file;
- S3 (an Avro container file, credentials from the descriptor) -> S3 (credentials from the AWS
  environment);
- a model whose `begin()` raises ends the engine at once, exit 1, the cause on the last line;
- attachments (zip and tar.gz) are where the model finds them;
- an HTTP `Url` input in CSV, written as FastScore's CSV page writes it -> Kafka in Avro
  (`avro-binary`), read back by a second engine from Kafka -> a file.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from common.ports import free_port
from tests.scoring_flow.conftest import (
    TEKSCORE,
    FlowLauncher,
    FlowRun,
    ThreadServer,
    read_jsonl,
    s3_client,
    wait_until,
)
from tests.scoring_flow.fastscore_assets import (
    FAILING_MODEL,
    avro_file,
    baked_env,
    descriptor,
    order,
    scored,
    seen,
    write_assets,
)
from tests.scoring_flow.kafka_tools import create_topics, read_all

BAKED = [str(TEKSCORE), "baked"]


def start_baked(flows: FlowLauncher, env: dict[str, str], *args: str) -> FlowRun:
    return flows.start({}, env=env, command=[*BAKED, *args])


def stop(run: FlowRun) -> int:
    run.proc.send_signal(signal.SIGTERM)
    return run.wait()


def post_ready(url: str, content: bytes, run: FlowRun) -> httpx.Response:
    """POST once the engine serves (polls until the port answers)."""

    def attempt() -> httpx.Response | None:
        if run.proc.poll() is not None:
            raise AssertionError(f"the engine exited:\n{run.log()}")
        try:
            return httpx.post(url, content=content, timeout=30)
        except httpx.TransportError:
            return None

    answer: httpx.Response = wait_until(attempt, what="the engine serving")
    return answer


def test_rest_round_trip_to_kafka_with_every_avro_type_family(
    flows: FlowLauncher, kafka: str, tmp_path: Path
) -> None:
    assets = write_assets(tmp_path / "assets")
    asyncio.run(create_topics(kafka, "output"))
    descriptor(
        assets,
        "rest.json",
        {"Transport": "REST", "Encoding": "json", "Batching": {"NagleTime": 0, "Watermark": None}},
    )
    descriptor(
        assets,
        "kafka.json",
        {
            "Transport": {"Type": "kafka", "BootstrapServers": [kafka], "Topic": "output"},
            "Encoding": "json",
        },
    )
    dead = tmp_path / "rejected.jsonl"
    descriptor(assets, "dead.json", {"Transport": {"Type": "file", "Path": str(dead)}})
    port = free_port()
    env = baked_env(
        assets,
        f"0:{assets / 'rest.json'};1:{assets / 'kafka.json'}",
        TEKSCORE_DEAD_LETTER=str(assets / "dead.json"),
    )
    run = start_baked(flows, env, "--http-port", str(port))
    base = f"http://127.0.0.1:{port}"
    bad = order(3, tier="BRONZE")
    lines = b"".join(json.dumps(r).encode() + b"\n" for r in (order(1), bad, order(2)))

    trip = post_ready(base + "/2/active/model/roundtrip/0/1", lines, run)
    assert trip.status_code == 200, trip.text
    answers = [json.loads(line) for line in trip.text.splitlines()]
    assert answers[0] == scored(1) and answers[2] == scored(2)
    assert answers[1]["$step"] == "schema:input"
    assert (
        "field 'tier': expected enum Tier (GOLD, SILVER), got string 'BRONZE'"
        in (answers[1]["$error"])
    )
    ours = httpx.post(base + "/score", json=order(4), timeout=30)
    assert ours.status_code == 200 and ours.json() == scored(4)

    assert sorted(r["id"] for r in asyncio.run(read_all(kafka, "output"))) == [1, 2, 4]
    assert sorted(seen(assets)) == [1, 2, 4]  # record 3 never reached the model
    assert stop(run) == 0, run.log()
    (letter,) = read_jsonl(dead)
    assert letter["record"] == bad and letter["step"] == "schema:input"


def test_file_with_loop_is_read_until_sigterm(flows: FlowLauncher, tmp_path: Path) -> None:
    assets = write_assets(tmp_path / "assets")
    data = tmp_path / "customers.jsons"
    data.write_text("".join(json.dumps(order(i)) + "\n" for i in (1, 2, 3)))
    out = tmp_path / "scored.jsons"
    descriptor(
        assets,
        "file-in.json",
        {
            "Transport": {"Type": "file", "Path": str(data)},
            "Loop": True,
            "Envelope": {"Type": "delimited"},
            "Encoding": "json",
        },
    )
    descriptor(
        assets,
        "file-out.json",
        {"Transport": {"Type": "file", "Path": str(out)}, "Encoding": "json"},
    )
    run = start_baked(
        flows, baked_env(assets, f"0:{assets / 'file-in.json'};1:{assets / 'file-out.json'}")
    )
    wait_until(lambda: len(seen(assets)) >= 12, what="the input read four times")
    assert not out.exists()  # a streaming file sink appears when the engine stops
    assert stop(run) == 0, run.log()
    ids = [r["id"] for r in read_jsonl(out)]
    assert len(ids) >= 12 and ids[:6] == [1, 2, 3, 1, 2, 3]
    assert read_jsonl(out)[:3] == [scored(1), scored(2), scored(3)]


def test_s3_to_s3_with_descriptor_and_environment_credentials(
    flows: FlowLauncher, s3: str, tmp_path: Path
) -> None:
    assets = write_assets(tmp_path / "assets")
    client = s3_client(s3)
    client.create_bucket(Bucket="orders")
    client.put_object(
        Bucket="orders", Key="in/orders.avro", Body=avro_file([order(i) for i in range(1, 6)])
    )
    descriptor(
        assets,
        "s3-in.json",
        {
            "Encoding": "avro-binary",
            "Envelope": "ocf-block",
            "Transport": {
                "Type": "S3",
                "Bucket": "orders",
                "ObjectKey": "in/orders.avro",
                "AccessKeyID": "fs-key",
                "SecretAccessKey": "fs-secret",
                "Region": "us-east-1",
            },
        },
    )
    descriptor(
        assets,
        "s3-out.json",
        {
            "Encoding": "JSON",
            "Transport": {"Type": "S3", "Bucket": "orders", "ObjectKey": "out/scored.jsons"},
        },
    )
    env = baked_env(
        assets,
        f"0:{assets / 's3-in.json'};1:{assets / 's3-out.json'}",
        AWS_ENDPOINT_URL=s3,
        AWS_ACCESS_KEY_ID="env-key",
        AWS_SECRET_ACCESS_KEY="env-secret",
        AWS_DEFAULT_REGION="us-east-1",
    )
    run = flows.run({}, env=env, command=BAKED)
    assert run.returncode == 0, run.log()
    body = client.get_object(Bucket="orders", Key="out/scored.jsons")["Body"].read()
    assert [json.loads(line) for line in body.splitlines()] == [scored(i) for i in range(1, 6)]
    notes = [e["note"] for e in run.events() if e.get("event") == "stream descriptor"]
    assert any("S3 credentials are read from the stream descriptor" in n for n in notes)
    assert "fs-secret" not in run.log()


def test_a_failing_begin_ends_the_engine_at_once_with_the_cause_last(
    flows: FlowLauncher, tmp_path: Path
) -> None:
    assets = write_assets(tmp_path / "assets", model=FAILING_MODEL)
    descriptor(
        assets,
        "in.json",
        {"Transport": {"Type": "inline", "Data": ['{"id": 1}']}, "Encoding": "json"},
    )
    descriptor(assets, "out.json", {"Transport": "discard", "Encoding": "json"})
    env = baked_env(
        assets, f"0:{assets / 'in.json'};1:{assets / 'out.json'}", TEKSCORE_READY_TIMEOUT="120"
    )
    started = time.monotonic()
    run = start_baked(flows, env)
    code = run.wait(timeout=60)  # the ready timeout is 120 s: it must not be waited out
    print(f"failing begin(): the engine ended after {time.monotonic() - started:.1f}s")
    assert code == 1
    last = run.events()[-1]
    assert last["event"] == "flow failed"
    assert "begin() raised RuntimeError: the lookup table is missing" in last["reason"]
    assert run.termination()["reason"] == "ModelLoadFailed"


ATTACHED_MODEL = """# fastscore.module-attached: pricing
import json

import pricing

with open("rates.json") as f:
    RATES = json.load(f)


def action(datum):
    yield {"id": datum["id"], "price": pricing.price(datum["qty"], RATES[datum["item"]])}
"""


def test_attachments_are_where_the_model_finds_them(flows: FlowLauncher, tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "model.py").write_text(ATTACHED_MODEL)
    with zipfile.ZipFile(assets / "lib.zip", "w") as archive:
        archive.writestr("pricing.py", "def price(qty, rate):\n    return qty * rate\n")
    with tarfile.open(assets / "data.tar.gz", "w:gz") as archive:
        rates = json.dumps({"pen": 1.5, "ink": 4.0}).encode()
        info = tarfile.TarInfo("rates.json")
        info.size = len(rates)
        archive.addfile(info, io.BytesIO(rates))
    out = tmp_path / "out.jsonl"
    records = [{"id": 1, "item": "pen", "qty": 2}, {"id": 2, "item": "ink", "qty": 3}]
    descriptor(
        assets,
        "in.json",
        {
            "Transport": {"Type": "inline", "Data": [json.dumps(r) for r in records]},
            "Encoding": "json",
        },
    )
    descriptor(assets, "out.json", {"Transport": {"Type": "file", "Path": str(out)}})
    env = {
        "MODEL": str(assets / "model.py"),
        "STREAMS": f"0:{assets / 'in.json'};1:{assets / 'out.json'}",
        "ATTACHMENTS": f"{assets / 'lib.zip'};{assets / 'data.tar.gz'}",
        "CONNECT_PREFIX": "https://connect:8001",
    }
    run = flows.run({}, env=env, command=BAKED)
    assert run.returncode == 0, run.log()
    assert read_jsonl(out) == [{"id": 1, "price": 3.0}, {"id": 2, "price": 12.0}]
    assert run.event("CONNECT_PREFIX ignored")["value"] == "https://connect:8001"


def record(name: str, **types: str) -> dict[str, Any]:
    """An Avro record schema of primitive fields."""
    fields = [{"name": field, "type": kind} for field, kind in types.items()]
    return {"type": "record", "name": name, "fields": fields}


LINE_SCHEMA = record("Line", id="int", item="string", qty="int", rate="double")
PRICED_SCHEMA = record("Priced", id="int", item="string", price="double")
PRICING_MODEL = """# fastscore.schema.0: linesch
# fastscore.schema.1: pricedsch
def action(datum):
    yield {"id": datum["id"], "item": datum["item"], "price": datum["qty"] * datum["rate"]}
"""
READING_MODEL = """# fastscore.schema.0: pricedsch
import json
import os


def action(datum):
    with open(os.environ["SEEN_FILE"], "a") as seen:
        seen.write(json.dumps(datum["id"]) + "\\n")
    yield {**datum, "read": True}
"""


def test_http_url_csv_to_kafka_avro_and_back_to_a_file(
    flows: FlowLauncher, kafka: str, tmp_path: Path
) -> None:
    lines = 'id,item,qty,rate\n1,pen,2,1.5\n\n2,"ink, blue",3,4.0\n3,pad,1,2.25\n'
    site = FastAPI()

    @site.get("/exports/lines.csv")
    async def lines_csv() -> PlainTextResponse:
        return PlainTextResponse(lines, media_type="text/csv")

    asyncio.run(create_topics(kafka, "priced"))
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "line.avsc").write_text(json.dumps(LINE_SCHEMA))
    (assets / "priced.avsc").write_text(json.dumps(PRICED_SCHEMA))
    (assets / "pricing.py").write_text(PRICING_MODEL)
    (assets / "reading.py").write_text(READING_MODEL)
    schemas = f"linesch:{assets / 'line.avsc'};pricedsch:{assets / 'priced.avsc'}"
    kafka_avro = {
        "Transport": {"Type": "Kafka", "BootstrapServers": [kafka], "Topic": "priced"},
        "Encoding": "avro-binary",
        "Envelope": None,
    }
    descriptor(assets, "kafka-out.json", kafka_avro)
    descriptor(assets, "kafka-in.json", {**kafka_avro, "SkipToRecord": "earliest"})
    out = tmp_path / "read.jsons"
    descriptor(assets, "file-out.json", {"Transport": {"Type": "file", "Path": str(out)}})
    expected = [
        {"id": 1, "item": "pen", "price": 3.0},
        {"id": 2, "item": "ink, blue", "price": 12.0},
        {"id": 3, "item": "pad", "price": 2.25},
    ]

    with ThreadServer(site) as server:
        descriptor(
            assets,
            "http-in.json",
            {
                "Transport": {"Type": "HTTP", "Url": server.url + "/exports/lines.csv"},
                "Encoding": {"Type": "csv", "QuoteCharacter": '"', "Delimiter": ","},
                "Envelope": {"Type": "delimited-csv", "Separator": "\n"},
            },
        )
        env = {
            "MODEL": str(assets / "pricing.py"),
            "SCHEMAS": schemas,
            "STREAMS": f"0:{assets / 'http-in.json'};1:{assets / 'kafka-out.json'}",
        }
        pricing = flows.run({}, env=env, command=BAKED)
    assert pricing.returncode == 0, pricing.log()
    assert pricing.event("input downloaded")["url"].endswith("/exports/lines.csv")

    reader = start_baked(
        flows,
        {
            "MODEL": str(assets / "reading.py"),
            "SCHEMAS": schemas,
            "STREAMS": f"0:{assets / 'kafka-in.json'};1:{assets / 'file-out.json'}",
            "SEEN_FILE": str(assets / "seen.jsonl"),
        },
    )
    wait_until(lambda: len(seen(assets)) >= 3, what="the second engine reading the topic")
    assert stop(reader) == 0, reader.log()
    assert sorted(read_jsonl(out), key=lambda r: r["id"]) == [{**r, "read": True} for r in expected]
