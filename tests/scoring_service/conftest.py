"""Fixtures for the scoring-service tests: free ports, model files written on the fly, and
real `tekscore serve-model` processes polled for readiness with bounded deadlines."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from common.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
TEKSCORE = Path(sys.executable).parent / "tekscore"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_INPUT = [{"name": f, "type": "double"} for f in FEATURES]
DEADLINE = 90.0


def wait_until(predicate: Any, *, timeout: float = DEADLINE, what: str = "condition") -> None:
    """Poll `predicate` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Server:
    """A `tekscore serve-model` child process on a free loopback port."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        full_env = {**os.environ, "TEKSCORE_LOG_FORMAT": "json", **(env or {})}
        self.proc = subprocess.Popen(
            [str(TEKSCORE), "serve-model", *args, "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30.0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _status(self, path: str) -> int | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return httpx.get(self.url + path, timeout=5.0).status_code
        except httpx.TransportError:
            return None

    def wait_live(self) -> Server:
        wait_until(lambda: self._status("/v2/health/live") == 200, what="live")
        return self

    def wait_ready(self) -> Server:
        wait_until(lambda: self._status("/v2/health/ready") == 200, what="ready")
        return self

    def stop(self) -> int:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    """Start servers with given args; all are stopped at the end of the test."""
    servers: list[Server] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> Server:
        server = Server(args, tmp_path / f"server-{len(servers)}.log", env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def write_config(path: Path, models: list[dict[str, Any]], **extra: Any) -> Path:
    """A --config file shaped like one scoringServices entry of the values file."""
    doc = {
        "name": "svc",
        "runtime": "python",
        "url": "http://127.0.0.1:8080",
        "replicas": 1,
        "workers": 1,
        "resources": {"requests": {}, "limits": {}},
        "derived": True,
        "models": models,
        **extra,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_module(folder: Path, name: str, source: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


RACETRACK = """
    class Adder:
        def __init__(self):
            self.factor = 2

        def perform(self, x, y=0.0):
            if x < 0:
                raise ValueError("x must not be negative")
            return {"sum": x + (y or 0.0), "double": x * self.factor}
"""

FASTSCORE = """
    ready = []

    def begin():
        ready.append(True)

    def action(datum):
        assert ready, "begin() was not called"
        n = datum["n"]
        if n < 0:
            raise ValueError("n must be >= 0")
        for i in range(n):
            yield {"i": i, "of": n}
"""

VECTORISED = """
    def score(records):
        if any(r.get("boom") for r in records):
            raise RuntimeError("boom")
        return [dict(r, _batch=len(records)) for r in records]
"""

SLOW = """
    import pathlib
    import time

    class Slow:
        def perform(self, marker, seconds):
            pathlib.Path(marker).write_text("started")
            time.sleep(seconds)
            return {"slept": seconds}
"""

SLEEPY_IMPORT = """
    import time

    time.sleep(4)

    def score(records):
        return [{"ok": True} for _ in records]
"""

NO_CONVENTION = """
    def predict(x):
        return x
"""


def _load_train() -> Any:
    spec = importlib.util.spec_from_file_location("iris_train", ROOT / "examples/iris/train.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def iris_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The iris example model, trained by examples/iris/train.py into a temp folder."""
    path: Path = _load_train().train(tmp_path_factory.mktemp("iris"))
    return path


@pytest.fixture(scope="session")
def iris_records() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = _load_train().make_records(300)
    return records


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    for name, source in [
        ("racetrack", RACETRACK),
        ("fastscore", FASTSCORE),
        ("vectorised", VECTORISED),
        ("slow", SLOW),
        ("sleepy", SLEEPY_IMPORT),
        ("noconv", NO_CONVENTION),
    ]:
        write_module(folder, name, source)
    return folder


@pytest.fixture(scope="session")
def main_server(
    tmp_path_factory: pytest.TempPathFactory, iris_model_path: Path, models_dir: Path
) -> Iterator[Server]:
    """One server with the iris sklearn model and each python convention, shared by tests."""
    folder = tmp_path_factory.mktemp("main")
    config = write_config(
        folder / "service.yaml",
        [
            {
                "name": "iris",
                "type": "sklearn",
                "uri": iris_model_path.as_uri(),
                "schema": {
                    "input": IRIS_INPUT,
                    "output": [{"name": "prediction", "type": "string"}],
                },
            },
            {
                "name": "adder",
                "type": "python",
                "uri": (models_dir / "racetrack.py").as_uri(),
                "schema": {
                    "input": [
                        {"name": "x", "type": "double"},
                        {"name": "y", "type": "double", "nullable": True},
                    ]
                },
            },
            {"name": "gen", "type": "python", "uri": (models_dir / "fastscore.py").as_uri()},
            {"name": "vec", "type": "python", "uri": (models_dir / "vectorised.py").as_uri()},
        ],
    )
    server = Server(["--config", str(config), "--max-body-bytes", "200000"], folder / "server.log")
    try:
        yield server.wait_ready()
    finally:
        server.stop()
