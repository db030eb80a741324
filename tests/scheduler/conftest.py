"""Fixtures for the scheduler tests: a real `tekscore serve` process on a free port with its own
home, and copies of the iris example in a temporary folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from common.ports import free_port

TOKEN = "test-api-token"
TEKSCORE = str(Path(sys.executable).parent / "tekscore")


class Scheduler:
    """A `tekscore serve` subprocess; `restart` keeps its port, home and secret."""

    def __init__(
        self, home: Path, *, tokens: str = TOKEN, extra_env: dict[str, str] | None = None
    ) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "TEKSCORE_HOME": str(home),
            "TEKSCORE_API_TOKENS": tokens,
            "TEKSCORE_SECRET": "test-secret",
            "TEKSCORE_GRACE_PERIOD": "3",
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "scheduler.log"
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [TEKSCORE, "serve", "--port", str(self.port)], env=self.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"scheduler exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("scheduler did not become ready")

    def kill(self) -> None:
        """SIGKILL: no shutdown at all."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.http.close()

    # -- API helpers ---------------------------------------------------------------------------

    def start_job(self, files: list[Path], **body: Any) -> dict[str, Any]:
        payload = {"pipeline": {"files": {str(p): p.read_text() for p in files}}, **body}
        response = self.http.post("/api/v1/jobs", json=payload)
        assert response.status_code == 201, response.text
        job: dict[str, Any] = response.json()
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job

    def wait_for(self, job_id: str, states: set[str], timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        job = self.job(job_id)
        while job["state"] not in states:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"job still {job['state']} ({job}); log: {self.log.read_text()[-3000:]}"
                )
            time.sleep(0.1)
            job = self.job(job_id)
        return job

    def job_processes(self, job_id: str) -> list[psutil.Process]:
        """Live processes whose command line mentions the job's folder."""
        marker = str(self.home / "jobs" / job_id)
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if any(marker in part for part in proc.info["cmdline"] or []):
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[Scheduler]:
    server = Scheduler(tmp_path / "home")
    server.start()
    yield server
    server.stop()
    for proc in psutil.process_iter(["cmdline"]):  # never leave a job process behind
        try:
            if any(str(server.home) in part for part in proc.info["cmdline"] or []):
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


@pytest.fixture
def iris(tmp_path: Path, iris_dir: Path) -> Path:
    """A copy of examples/iris (trained model, input, IR) in a temporary folder."""
    target = tmp_path / "iris"
    target.mkdir()
    for name in ("model.yaml", "batch.yaml", "streaming.yaml", "input.jsonl", "model.joblib"):
        shutil.copy(iris_dir / name, target / name)
    return target


def http_streaming_ir(folder: Path) -> Path:
    """A streaming pipeline: an on-demand HTTP flow scoring with the iris model."""
    path = folder / "http.yaml"
    path.write_text(
        """\
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {name: iris-http}
spec:
  models: [iris]
  dataChannels:
    - {name: requests, direction: source, type: http, config: {port: 8090}}
    - {name: nowhere, direction: sink, type: discard}
  scoringFlows:
    - {name: on-demand, mode: streaming, source: requests, sink: nowhere, steps: [{type: score, model: iris}]}
"""
    )
    return path
