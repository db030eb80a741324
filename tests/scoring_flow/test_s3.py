"""S3 source and sink against a real S3 server (moto_server) with credentials from secretRefs:
an object streamed through the real iris service into a csv object, a >10 MiB output written
as a multipart upload with 5 MiB parts, and a flow killed mid-upload leaving no object at the
key (the upload is never completed)."""

from __future__ import annotations

import csv
import io
import json
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scoring_flow.conftest import (
    FEATURES,
    SCORE_STEP,
    FlowLauncher,
    ServeModel,
    iris_services,
    read_jsonl,
    s3_client,
    wait_until,
)

SECRET_ENV = {
    "TEKSCORE_SECRET_S3_CREDS_ACCESS_KEY": "testing",
    "TEKSCORE_SECRET_S3_CREDS_SECRET_KEY": "testing",
}


@pytest.fixture
def bucket(s3: str) -> Iterator[tuple[Any, str]]:
    client = s3_client(s3)
    name = f"b-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name)
    yield client, name


def s3_channel(endpoint: str, bucket: str, key: str, direction: str, **fmt: Any) -> dict:
    return {
        "type": "s3",
        "direction": direction,
        "format": fmt or {"encoding": "jsonl"},
        "config": {
            "bucket": bucket,
            "key": key,
            "endpointUrl": endpoint,
            "partSizeMb": 5,
            "accessKeyId": {"secretRef": {"name": "s3-creds", "key": "access-key"}},
            "secretAccessKey": {"secretRef": {"name": "s3-creds", "key": "secret-key"}},
        },
    }


def test_s3_object_scored_into_a_csv_object(
    iris: Path, service: ServeModel, s3: str, bucket: tuple[Any, str], flows: FlowLauncher
) -> None:
    client, name = bucket
    client.upload_file(str(iris / "input.jsonl"), name, "in/iris.jsonl")
    schema = [{"name": "id", "type": "long"}, {"name": "prediction", "type": "string"}]
    config = {
        "name": "s3-iris",
        "mode": "batch",
        "source": s3_channel(s3, name, "in/iris.jsonl", "source"),
        "sink": s3_channel(s3, name, "out/scored.csv", "sink", encoding="csv", schema=schema),
        "steps": [SCORE_STEP],
        "services": iris_services(service.url),
    }
    run = flows.run(config, env=SECRET_ENV)
    assert run.returncode == 0, run.log()
    body = client.get_object(Bucket=name, Key="out/scored.csv")["Body"].read().decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    inputs = read_jsonl(iris / "input.jsonl")
    assert [int(r["id"]) for r in rows] == [r["id"] for r in inputs]
    assert {r["prediction"] for r in rows} == {"setosa", "versicolor", "virginica"}
    assert "testing" not in run.log()


def big_flow(s3: str, name: str, src: Path, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "s3-big",
        "mode": "batch",
        "source": {"type": "file", "direction": "source", "config": {"path": str(src)}},
        "sink": s3_channel(s3, name, "out/big.jsonl", "sink"),
        "steps": steps,
        "batchSize": 1000,
    }


def write_big(path: Path, count: int) -> Path:
    with path.open("w") as f:
        for i in range(count):
            f.write(json.dumps({"id": i, **{k: 1.0 for k in FEATURES}}) + "\n")
    return path


PAD = {"type": "map", "set": {"pad": "x" * 300}}


def test_large_output_is_a_multipart_upload(
    s3: str, bucket: tuple[Any, str], flows: FlowLauncher, tmp_path: Path
) -> None:
    client, name = bucket
    count = 30_000  # ~11 MiB of output: three parts of at most 5 MiB
    src = write_big(tmp_path / "big.jsonl", count)
    run = flows.run(big_flow(s3, name, src, [PAD]), env=SECRET_ENV)
    assert run.returncode == 0, run.log()
    head = client.head_object(Bucket=name, Key="out/big.jsonl")
    assert head["ContentLength"] > 10 * 1024 * 1024
    assert head["ETag"].strip('"').endswith("-3")  # a multipart ETag: md5-of-parts "-" count
    body = client.get_object(Bucket=name, Key="out/big.jsonl")["Body"].read().splitlines()
    assert len(body) == count
    assert json.loads(body[-1])["id"] == count - 1


def test_killed_flow_leaves_no_object(
    s3: str, bucket: tuple[Any, str], flows: FlowLauncher, tmp_path: Path
) -> None:
    client, name = bucket
    src = write_big(tmp_path / "big.jsonl", 30_000)
    slow = tmp_path / "slow.py"
    slow.write_text(
        "import time\n\ndef transform(records):\n    time.sleep(0.2)\n    return records\n"
    )
    config = big_flow(s3, name, src, [PAD, {"type": "python", "uri": slow.as_uri()}])
    run = flows.start(config, env=SECRET_ENV)

    def uploading() -> bool:
        uploads = client.list_multipart_uploads(Bucket=name).get("Uploads", [])
        return any(
            client.list_parts(Bucket=name, Key=u["Key"], UploadId=u["UploadId"]).get("Parts")
            for u in uploads
        )

    wait_until(uploading, what="a part uploaded")
    run.proc.send_signal(signal.SIGKILL)
    run.wait()
    listed = client.list_objects_v2(Bucket=name, Prefix="out/").get("Contents", [])
    assert listed == []
