"""`tekscore channel import | verify | sample` as real processes against real parts (files, a
moto S3 server, a tansu Kafka broker), and FastScore descriptors read as DataChannels by a
scheduled job (`tekscore run --channels DIR`, the embedded server and local backend), directly
and imported as DataChannel YAML, giving the same results as the baked engine with the same
descriptors."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.scoring_flow.conftest import TEKSCORE, FlowLauncher, read_jsonl, s3_client
from tests.scoring_flow.fastscore_assets import (
    avro_file,
    baked_env,
    descriptor,
    order,
    scored,
    write_assets,
)
from tests.scoring_flow.kafka_tools import create_topics, produce


def tekscore(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [str(TEKSCORE), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=180,
        check=False,
    )


def sampled(out: str) -> list[dict[str, Any]]:
    """The records `channel sample` printed (`   1: {...}`)."""
    return [json.loads(line.split(": ", 1)[1]) for line in out.splitlines() if line.strip()]


def test_import_writes_the_channel_and_says_what_to_do_with_credentials(tmp_path: Path) -> None:
    assets = write_assets(tmp_path)
    path = descriptor(
        assets,
        "s3-in.json",
        {
            "Encoding": "JSON",
            "Transport": {
                "Type": "S3",
                "Bucket": "orders",
                "ObjectKey": "k",
                "AccessKeyID": "AKIA",
                "SecretAccessKey": "s3cr3t",
            },
            "Schema": "input",
            "Batching": {"Watermark": 500, "NagleTime": 10},
        },
    )
    done = tekscore("channel", "import", str(path), "--name", "orders")
    assert done.returncode == 0, done.stderr
    channel = yaml.safe_load(done.stdout)
    assert channel["metadata"]["name"] == "orders"
    assert channel["spec"]["config"]["secretAccessKey"] == {
        "secretRef": {"name": "orders", "key": "secret-access-key"}
    }
    assert channel["spec"]["format"]["schema"][0] == {
        "name": "id",
        "type": "long",
        "nullable": False,
    }
    assert "s3cr3t" not in done.stdout + done.stderr
    assert "create the Secret 'orders'" in done.stderr
    assert "TEKSCORE_SECRET_ORDERS_ACCESS_KEY_ID" in done.stderr
    assert "Batching.Watermark 500: set batchSize on the flow" in done.stderr
    refused = descriptor(assets, "odbc.json", {"Transport": {"Type": "ODBC"}})
    bad = tekscore("channel", "import", str(refused))
    assert bad.returncode == 2 and "Transport ODBC is not supported" in bad.stderr


def test_verify_and_sample_a_file(tmp_path: Path) -> None:
    assets = write_assets(tmp_path)
    data = tmp_path / "orders.jsons"
    data.write_text(
        json.dumps(order(1))
        + "\n"
        + json.dumps(order(2, day="monday"))
        + "\n{oops\n"
        + json.dumps(order(3))
        + "\n"
    )
    path = descriptor(
        assets, "orders.json", {"Transport": {"Type": "file", "Path": str(data)}, "Schema": "input"}
    )
    ok = tekscore("channel", "verify", str(path))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"channel orders (file source): OK: {data} is readable")
    got = tekscore("channel", "sample", str(path), "-n", "3")
    assert got.returncode == 0, got.stderr
    first, second, third = sampled(got.stdout)
    assert first == order(1)
    assert second["$step"] == "schema:input"
    assert second["$error"] == "field 'day': expected int (date), got string"
    assert third["$step"] == "decode" and third["input"].rstrip() == "{oops"
    data.unlink()
    gone = tekscore("channel", "verify", str(path))
    assert gone.returncode == 1 and "does not exist" in gone.stderr


def test_verify_and_sample_s3_through_the_registry(s3: str, tmp_path: Path) -> None:
    registry = write_assets(tmp_path / "channels")
    client = s3_client(s3)
    client.create_bucket(Bucket="sampled")
    client.put_object(
        Bucket="sampled", Key="orders.avro", Body=avro_file([order(i) for i in range(1, 31)])
    )
    (registry / "orders-avro.json").write_text(
        json.dumps(
            {
                "Transport": {"Type": "S3", "Bucket": "sampled", "ObjectKey": "orders.avro"},
                "Encoding": "avro-binary",
                "Envelope": "ocf-block",
                "Schema": "input",
            }
        )
    )
    (registry / "missing.json").write_text(
        json.dumps(
            {
                "Transport": {"Type": "S3", "Bucket": "sampled", "ObjectKey": "nope.avro"},
                "Encoding": "avro-binary",
            }
        )
    )
    aws = {
        "AWS_ENDPOINT_URL": s3,
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TEKSCORE_CHANNELS": str(registry),
    }
    ok = tekscore("channel", "verify", "orders-avro", **aws)
    assert ok.returncode == 0, ok.stderr
    assert "s3://sampled/orders.avro is reachable" in ok.stdout
    got = tekscore("channel", "sample", "orders-avro", "-n", "5", **aws)
    assert got.returncode == 0, got.stderr
    assert sampled(got.stdout) == [order(i) for i in range(1, 6)]
    missing = tekscore("channel", "verify", "missing", **aws)
    assert missing.returncode == 1 and "s3://sampled/nope.avro: 404" in missing.stderr
    as_sink = tekscore("channel", "verify", "missing", "--direction", "sink", **aws)
    assert as_sink.returncode == 2 and "an avro sink needs format.schema" in as_sink.stderr


def test_verify_and_sample_kafka_without_moving_any_consumer_group(
    kafka: str, tmp_path: Path
) -> None:
    asyncio.run(create_topics(kafka, "sampled-orders"))
    asyncio.run(produce(kafka, "sampled-orders", [order(i) for i in range(1, 8)]))
    path = descriptor(
        tmp_path,
        "kafka-in.json",
        {
            "Transport": {"Type": "kafka", "BootstrapServers": [kafka], "Topic": "sampled-orders"},
            "Encoding": "json",
        },
    )
    ok = tekscore("channel", "verify", str(path))
    assert ok.returncode == 0, ok.stderr
    assert f"topic sampled-orders exists at {kafka} (2 partitions)" in ok.stdout
    got = tekscore("channel", "sample", str(path), "-n", "20")
    assert got.returncode == 0, got.stderr
    assert sorted(r["id"] for r in sampled(got.stdout)) == list(range(1, 8))
    again = tekscore("channel", "sample", str(path), "-n", "20")
    assert sorted(r["id"] for r in sampled(again.stdout)) == list(range(1, 8))  # nothing taken
    absent = descriptor(
        tmp_path,
        "absent.json",
        {"Transport": {"Type": "kafka", "BootstrapServers": [kafka], "Topic": "no-such-topic"}},
    )
    missing = tekscore("channel", "verify", str(absent))
    assert missing.returncode == 1 and "topic 'no-such-topic' does not exist" in missing.stderr


PIPELINE = """
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {name: orders}
spec:
  models:
    - {name: scorer, type: python, uri: "file://./model.py"}
  scoringFlows:
    - name: score-orders
      mode: batch
      source: orders-in
      sink: orders-out
      deadLetter: rejected
      steps: [{type: score, model: scorer, merge: false}]
"""


def test_descriptors_as_registry_channels_score_as_the_baked_engine_does(
    flows: FlowLauncher, tmp_path: Path
) -> None:
    registry = write_assets(tmp_path / "channels", names=("inputsch", "outputsch"))
    (registry / "model.py").unlink()
    job = write_assets(tmp_path / "job", names=("inputsch", "outputsch"))
    records = [order(1), order(2, tier="BRONZE"), order(3), order(4)]
    data = tmp_path / "orders.jsons"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    job_out, baked_out = tmp_path / "job-out.jsons", tmp_path / "baked-out.jsons"
    source = descriptor(
        registry,
        "orders-in.json",
        {
            "Transport": {"Type": "file", "Path": str(data)},
            "Encoding": "json",
            "Schema": "inputsch",
        },
    )
    descriptor(
        registry,
        "orders-out.json",
        {
            "Transport": {"Type": "file", "Path": str(job_out)},
            "Encoding": "json",
            "Schema": "outputsch",
        },
    )
    descriptor(
        registry,
        "rejected.json",
        {"Transport": {"Type": "file", "Path": str(tmp_path / "rejected.jsons")}},
    )
    (job / "pipeline.yaml").write_text(PIPELINE)
    # the registry's files are outside the pipeline's folder: the operator's data root
    roots = {"TEKSCORE_DATA_ROOTS": str(tmp_path)}

    run = tekscore(
        "run",
        str(job / "pipeline.yaml"),
        "--channels",
        str(registry),
        "--home",
        str(tmp_path / "home"),
        **roots,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    (rejected,) = read_jsonl(tmp_path / "rejected.jsons")
    assert rejected["record"]["id"] == 2 and rejected["step"] == "schema:input"

    out = descriptor(
        job,
        "baked-out.json",
        {"Transport": {"Type": "file", "Path": str(baked_out)}, "Encoding": "json"},
    )
    env = baked_env(job, f"0:{source};1:{out}")
    env["SCHEMAS"] = f"inputsch:{job / 'inputsch.avsc'};outputsch:{job / 'outputsch.avsc'}"
    baked = flows.run({}, env=env, command=[str(TEKSCORE), "baked"])
    assert baked.returncode == 0, baked.log()
    assert read_jsonl(job_out) == read_jsonl(baked_out) == [scored(1), scored(3), scored(4)]

    imported = tmp_path / "imported"  # the same descriptors, imported as DataChannel YAML
    imported.mkdir()
    for name in ("orders-in", "orders-out", "rejected"):
        done = tekscore(
            "channel",
            "import",
            str(registry / f"{name}.json"),
            "-o",
            str(imported / f"{name}.yaml"),
        )
        assert done.returncode == 0, done.stderr
    job_out.unlink()
    again = tekscore(
        "run",
        str(job / "pipeline.yaml"),
        "--channels",
        str(imported),
        "--home",
        str(tmp_path / "home-imported"),
        **roots,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert read_jsonl(job_out) == read_jsonl(baked_out)


def test_run_reads_and_writes_files_in_the_channel_registry_folder(tmp_path: Path) -> None:
    """`tekscore run --channels DIR`: the registry's folder is a data root of the embedded
    server (as the IR's folder is), so its channels' files there need no --data-root."""
    registry = write_assets(tmp_path / "channels", names=("inputsch", "outputsch"))
    (registry / "model.py").unlink()
    job = write_assets(tmp_path / "job", names=("inputsch", "outputsch"))
    data, out = registry / "orders.jsons", registry / "scored.jsons"
    data.write_text("".join(json.dumps(order(i)) + "\n" for i in (1, 3)))
    for name, path in (
        ("orders-in", data),
        ("orders-out", out),
        ("rejected", registry / "r.jsons"),
    ):
        transport = {"Type": "file", "Path": str(path)}
        descriptor(registry, f"{name}.json", {"Transport": transport, "Encoding": "json"})
    (job / "pipeline.yaml").write_text(PIPELINE)
    home = str(tmp_path / "home")
    run = tekscore("run", str(job / "pipeline.yaml"), "--channels", str(registry), "--home", home)
    assert run.returncode == 0, run.stdout + run.stderr
    assert read_jsonl(out) == [scored(1), scored(3)]
