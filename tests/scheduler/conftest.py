"""Fixtures for the scheduler tests: the app in-process (httpx's ASGITransport, its lifespan run
by the test, a runner that starts no process), a real `tekscore serve` process on a free port
with its own home for the end-to-end paths, and copies of the iris example."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import structlog

from common.ports import free_port
from scheduler.config import Settings
from scheduler.jobs import JobService
from scheduler.main import create_app
from scheduler.schemas import BackendInfo, JobRecord
from scheduler.states import Event

TOKEN = "test-api-token"
TEKSCORE = str(Path(sys.executable).parent / "tekscore")


class Scheduler:
    """A `tekscore serve` subprocess; `restart` keeps its port, home and secret. `data_root` is
    its data root and code source (the tests' temporary folders: IR, models and records)."""

    def __init__(
        self,
        home: Path,
        *,
        tokens: str = TOKEN,
        extra_env: dict[str, str] | None = None,
        data_root: Path | None = None,
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
            **(
                {"TEKSCORE_DATA_ROOTS": str(data_root), "TEKSCORE_CODE_SOURCES": str(data_root)}
                if data_root is not None
                else {}
            ),
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

    def close(self) -> None:
        """Stop the server and kill every process of its jobs (a test never leaves one behind;
        `stop` alone leaves them running, as a restart expects)."""
        self.stop()
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if any(str(self.home) in part for part in proc.info["cmdline"] or []):
                    proc.kill()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue

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
        """Live processes of the job: every member of the process group of each process its
        `processes.json` records (same start time or later: a warm spare's command line names
        its spare folder, not the job's), and any process whose command line mentions the
        job's folder."""
        job_dir = self.home / "jobs" / job_id
        try:
            records = json.loads((job_dir / "processes.json").read_text())["processes"]
        except (OSError, ValueError, KeyError):
            records = []
        leaders = {int(r["pid"]): float(r["createTime"]) for r in records}
        marker = str(job_dir)
        found = []
        for proc in psutil.process_iter(["cmdline", "status", "create_time"]):
            try:
                if proc.info["status"] == psutil.STATUS_ZOMBIE:
                    continue
                group = os.getpgid(proc.pid)
                if (group in leaders and proc.info["create_time"] >= leaders[group] - 0.05) or any(
                    marker in part for part in proc.info["cmdline"] or []
                ):
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
                continue
        return found


@pytest.fixture
def scheduler(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scheduler]:
    """A real server; `TEKSCORE_API_TOKENS` is `TOKEN` (admin) unless a test parametrizes this
    fixture indirectly with its own value."""
    server = Scheduler(
        tmp_path / "home", tokens=getattr(request, "param", TOKEN), data_root=tmp_path
    )
    server.start()
    yield server
    server.close()


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


# ------------------------------------------------------------------ in-process


class InstantRunner:
    """The runner of the in-process app: it runs each job's pipeline at once through the job
    service, as if install, wait and finally all succeeded immediately (no process); a cancel
    before the end is honoured (the job then ends CANCELLED). `hold` cleared keeps started jobs
    RUNNING until it is set again."""

    kind = "local"
    ends_during_install = False

    def __init__(self, service: JobService) -> None:
        self.service = service
        self.tasks: set[asyncio.Task[None]] = set()
        self.hold = asyncio.Event()
        self.hold.set()

    def info(self, job_id: str) -> BackendInfo:
        return BackendInfo(kind="local", release=job_id)

    async def start(self, job: JobRecord, values: dict[str, Any]) -> None:
        task = asyncio.create_task(self._run(job.id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, job_id: str) -> None:
        if await self.service.transition(job_id, Event.INSTALL_STARTED) is not None:
            await self.service.transition(job_id, Event.INSTALLED)
            await self.hold.wait()
            await self.service.complete(job_id, by="wait task", processes_done=True)
        await self.service.transition(job_id, Event.FINALLY_DONE)

    async def stop(self, job: JobRecord) -> None:
        pass

    def observe(self, job: JobRecord) -> None:
        pass

    async def recover(self, jobs: list[JobRecord]) -> None:
        pass

    async def close(self) -> None:
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def problems(self) -> list[str]:
        return []

    def log_files(self, job_id: str) -> dict[str, Path]:
        return {}


class Api:
    """The scheduling server's app in this process, and a client of it (API token set)."""

    def __init__(
        self,
        app: Any,
        http: httpx.AsyncClient,
        anonymous: httpx.AsyncClient,
        runner: InstantRunner,
    ) -> None:
        self.app = app
        self.runner = runner
        self.http = http
        self.anonymous = anonymous  # no token: each request brings its own, or none

    async def start_job(self, files: list[Path], **body: Any) -> dict[str, Any]:
        payload = {"pipeline": {"files": {str(p): p.read_text() for p in files}}, **body}
        response = await self.http.post("/api/v1/jobs", json=payload)
        assert response.status_code == 201, response.text
        job: dict[str, Any] = response.json()
        return job

    async def wait_for(self, job_id: str, states: set[str], timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = (await self.http.get(f"/api/v1/jobs/{job_id}")).json()
            if job["state"] in states:
                return job
            assert time.monotonic() < deadline, f"job still {job['state']}: {job}"
            await asyncio.sleep(0.01)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """The app with its lifespan (SQLite store under tmp), `InstantRunner` as its runner, and
    an httpx client over ASGITransport sending the API token."""
    settings = Settings(
        home=tmp_path / "home",
        api_tokens=TOKEN,
        secret="test-secret",
        log_level="warning",
        data_roots=[tmp_path],
        code_sources=[str(tmp_path)],
    )
    runners: list[InstantRunner] = []

    def runner(_settings: Settings, service: JobService) -> InstantRunner:
        runners.append(InstantRunner(service))
        return runners[-1]

    app = create_app(settings, runner=runner)
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://scheduler.test",
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as http,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://scheduler.test"
            ) as anonymous,
        ):
            yield Api(app, http, anonymous, runners[-1])
    finally:  # the lifespan configured logging for the process: put it back
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**config)
