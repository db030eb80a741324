"""`type: test-data` channels against a real test-data server (`tekscore channel test-data`
child process): the iris sample scored by the real iris service into a sink the server keeps,
in jsonl and csv; a run replaces what the sink held; a sharded flow keeps one sink per shard;
a sink past the server's byte limit fails the flow and leaves nothing; a missing sample fails
naming the samples there; `channel verify` and `channel sample` reach the server."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.ports import free_port
from tests.scoring_flow.conftest import (
    SCORE_STEP,
    TEKSCORE,
    FlowLauncher,
    ServeModel,
    iris_services,
    read_jsonl,
    stop_child,
    wait_until,
)


class TestDataServer:
    """`tekscore channel test-data` on a free loopback port."""

    __test__ = False

    def __init__(self, samples: Path, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [
                TEKSCORE,
                "channel",
                "test-data",
                "--samples",
                samples,
                "--port",
                str(self.port),
                *extra,
            ],
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._up, what="the test-data server")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"test-data server exited:\n{self.log.read_text()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def sink(self, name: str) -> httpx.Response:
        return httpx.get(f"{self.url}/sinks/{name}", timeout=10)

    def stop(self) -> None:
        stop_child(self.proc)
        self._out.close()


@pytest.fixture
def samples(iris: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "samples"
    folder.mkdir()
    (folder / "iris").write_bytes((iris / "input.jsonl").read_bytes())
    (folder / "not-a-sample.jsonl").write_text("{}\n")  # not a name: not served
    return folder


@pytest.fixture
def server(samples: Path, tmp_path: Path) -> Iterator[TestDataServer]:
    running = TestDataServer(samples, tmp_path / "test-data.log")
    try:
        yield running
    finally:
        running.stop()


def channel(url: str, name: str, direction: str, **fmt: Any) -> dict[str, Any]:
    return {
        "type": "test-data",
        "direction": direction,
        "format": fmt or {"encoding": "jsonl"},
        "config": {"url": url, "name": name},
    }


def flow(url: str, service: str, *, source: str = "iris", sink: str = "scored", **fmt: Any) -> dict:
    return {
        "name": "try-it",
        "mode": "batch",
        "source": channel(url, source, "source"),
        "sink": channel(url, sink, "sink", **fmt),
        "steps": [SCORE_STEP],
        "services": iris_services(service),
    }


def test_a_sample_is_scored_into_a_sink_the_server_keeps(
    iris: Path, service: ServeModel, server: TestDataServer, flows: FlowLauncher
) -> None:
    assert server.sink("scored").status_code == 404
    run = flows.run(flow(server.url, service.url))
    assert run.returncode == 0, run.log()
    kept = [json.loads(line) for line in server.sink("scored").text.splitlines()]
    inputs = read_jsonl(iris / "input.jsonl")
    assert [r["id"] for r in kept] == [r["id"] for r in inputs]
    assert {r["prediction"] for r in kept} == {"setosa", "versicolor", "virginica"}
    index = httpx.get(server.url + "/", timeout=10).json()
    assert index["samples"] == ["iris"]
    assert index["sinks"] == {"scored": {"bytes": len(server.sink("scored").content)}}

    # a second run, into csv, replaces what the sink held (like a file sink's file)
    schema = [{"name": "id", "type": "long"}, {"name": "prediction", "type": "string"}]
    run = flows.run(flow(server.url, service.url, encoding="csv", schema=schema))
    assert run.returncode == 0, run.log()
    rows = list(csv.DictReader(io.StringIO(server.sink("scored").text)))
    assert [int(r["id"]) for r in rows] == [r["id"] for r in inputs]


def test_a_sharded_flow_keeps_one_sink_per_shard(
    iris: Path, service: ServeModel, server: TestDataServer, flows: FlowLauncher
) -> None:
    ids: list[int] = []
    for index in range(2):
        run = flows.run(
            {**flow(server.url, service.url), "shards": 2},
            env={"JOB_COMPLETION_INDEX": str(index)},
        )
        assert run.returncode == 0, run.log()
        response = server.sink(f"scored-{index:05d}-of-00002")
        assert response.status_code == 200, response.text
        ids += [json.loads(line)["id"] for line in response.text.splitlines()]
    assert sorted(ids) == sorted(r["id"] for r in read_jsonl(iris / "input.jsonl"))
    assert server.sink("scored").status_code == 404


def test_a_sink_past_the_servers_limit_fails_the_flow_and_leaves_nothing(
    samples: Path, service: ServeModel, flows: FlowLauncher, tmp_path: Path
) -> None:
    small = TestDataServer(samples, tmp_path / "small.log", "--max-bytes", "2000")
    try:
        run = flows.run(flow(small.url, service.url))
        assert run.returncode == 1, run.log()
        message = run.termination()["message"]
        assert "413" in message and "holds at most 2000 bytes" in message, message
        assert small.sink("scored").status_code == 404
        assert httpx.get(small.url + "/", timeout=10).json()["sinks"] == {}
    finally:
        small.stop()


def test_a_missing_sample_fails_naming_the_samples_there(
    service: ServeModel, server: TestDataServer, flows: FlowLauncher
) -> None:
    run = flows.run(flow(server.url, service.url, source="irises"))
    assert run.returncode == 1, run.log()
    message = run.termination()["message"]
    assert "/samples/irises: 404 no sample irises (samples: iris)" in message, message
    assert server.sink("scored").status_code == 404


def test_channel_verify_and_sample_reach_the_server(server: TestDataServer, tmp_path: Path) -> None:
    def doc(name: str, direction: str) -> Path:
        path = tmp_path / f"{name}-{direction}.yaml"
        spec = channel(server.url, name, direction)
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "tekscore.dev/v1",
                    "kind": "DataChannel",
                    "metadata": {"name": name},
                    "spec": spec,
                }
            )
        )
        return path

    def tekscore(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TEKSCORE, "channel", *args], capture_output=True, text=True, timeout=60
        )

    ok = tekscore("verify", doc("iris", "source"))
    assert ok.returncode == 0, ok.stderr
    assert f"sample iris is served by {server.url}" in ok.stdout
    missing = tekscore("verify", doc("nope", "source"))
    assert missing.returncode == 1
    assert "has no sample nope (samples: iris)" in missing.stderr
    sink = tekscore("verify", doc("out", "sink"))
    assert sink.returncode == 0, sink.stderr
    assert "sink out can be written" in sink.stdout
    shown = tekscore("sample", doc("iris", "source"), "-n", "3")
    assert shown.returncode == 0, shown.stderr
    assert [line.split(": ", 1)[0].strip() for line in shown.stdout.splitlines()] == ["1", "2", "3"]
    assert '"sepal_length"' in shown.stdout
