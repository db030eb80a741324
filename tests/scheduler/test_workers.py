"""Pre-processing in worker processes (`scheduler.workers.Renderer`): the same values and the same
422 issues as in the server's own process, a worker that dies gives a 503 and a fresh worker for
the next request, never a 500. Real worker processes (multiprocessing's fork server)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

import ir
from ir import IRValidationError, JobBundle
from scheduler import rules
from scheduler.config import Settings
from scheduler.errors import PreprocessUnavailable
from scheduler.limits import JobLimits, render_within
from scheduler.schemas import JobCreate
from scheduler.workers import Renderer
from tests.scheduler.conftest import Api


def bundle_of(folder: Path, **changes: str) -> JobBundle:
    files = {str(folder / n): (folder / n).read_text() for n in ("model.yaml", "batch.yaml")}
    for name, text in changes.items():
        files[str(folder / name)] = text
    request = JobCreate(pipeline={"files": files}, base_dir=str(folder))
    return rules.make_bundle(
        request, job_id="j-workers01", globals_=ir.load_globals(None), channels={}, base_dir=folder
    )


def limits_for(folder: Path, **overrides: int) -> JobLimits:
    settings = Settings(home=folder / "home", data_roots=[folder], code_sources=[str(folder)])
    return JobLimits.from_settings(settings.model_copy(update=overrides))


def wait_gone(pids: list[int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids):
        assert time.monotonic() < deadline, f"workers {pids} still alive"
        time.sleep(0.02)


@pytest.fixture
async def renderer():
    renderer = Renderer(1)
    renderer.start()
    try:
        yield renderer
    finally:
        await renderer.close()


async def test_a_worker_renders_what_the_server_would(renderer: Renderer, iris: Path):
    bundle, limits = bundle_of(iris), limits_for(iris)
    rendered = await renderer.render(bundle, limits)
    here = render_within(bundle, limits)
    assert rendered.values == here.values
    assert rendered.content_hash == here.content_hash
    assert rendered.pipeline == here.pipeline == "iris-batch"
    assert renderer.pids() and os.getpid() not in renderer.pids()


async def test_ir_problems_come_back_as_every_issue_with_file_line_and_path(
    renderer: Renderer, iris: Path
):
    text = (iris / "batch.yaml").read_text().replace("sink: iris-scored", "sink: nowhere")
    text = text.replace("  models: [iris]", "  models: [iris, missing]")
    bundle, limits = bundle_of(iris, **{"batch.yaml": text}), limits_for(iris)
    with pytest.raises(IRValidationError) as here:
        render_within(bundle, limits)
    with pytest.raises(IRValidationError) as there:
        await renderer.render(bundle, limits)
    assert [i.as_dict() for i in there.value.issues] == [i.as_dict() for i in here.value.issues]
    assert len(there.value.issues) == 2
    assert all(i.file.endswith("batch.yaml") and i.line for i in there.value.issues)


async def test_every_limit_passed_is_an_issue_from_the_worker_too(renderer: Renderer, iris: Path):
    text = (iris / "batch.yaml").read_text()
    bundle = bundle_of(iris, **{"batch.yaml": text})
    limits = limits_for(iris, max_flows=1, max_processes=1)
    with pytest.raises(IRValidationError) as there:
        await renderer.render(bundle, limits)
    messages = " | ".join(i.msg for i in there.value.issues)
    assert "TEKSCORE_MAX_PROCESSES" in messages, messages


async def test_a_dead_worker_fails_its_request_with_503_and_the_next_one_gets_a_new_worker(
    renderer: Renderer, iris: Path
):
    bundle, limits = bundle_of(iris), limits_for(iris)
    await renderer.render(bundle, limits)
    dead = renderer.pids()
    for pid in dead:
        os.kill(pid, signal.SIGKILL)
    wait_gone(dead)
    with pytest.raises(PreprocessUnavailable, match="retry"):
        await renderer.render(bundle, limits)
    rendered = await renderer.render(bundle, limits)
    assert rendered.pipeline == "iris-batch"
    assert renderer.pids() and not set(renderer.pids()) & set(dead)


async def test_without_workers_it_renders_in_a_thread(iris: Path):
    renderer = Renderer(0)
    renderer.start()
    try:
        rendered = await renderer.render(bundle_of(iris), limits_for(iris))
        assert rendered.pipeline == "iris-batch"
        assert renderer.pids() == []
    finally:
        await renderer.close()


async def test_the_api_answers_503_when_the_worker_died_and_201_on_retry(api: Api, iris: Path):
    body = {
        "pipeline": {
            "files": {str(iris / n): (iris / n).read_text() for n in ("model.yaml", "batch.yaml")}
        },
        "base_dir": str(iris),
    }
    renderer: Renderer = api.app.state.renderer
    first = await api.http.post("/api/v1/jobs", json=body)
    assert first.status_code == 201, first.text
    dead = renderer.pids()
    assert dead
    for pid in dead:
        os.kill(pid, signal.SIGKILL)
    wait_gone(dead)
    refused = await api.http.post("/api/v1/jobs", json=body)
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "1"
    assert "pre-processing worker stopped" in refused.json()["detail"]
    again = await api.http.post("/api/v1/jobs", json=body)
    assert again.status_code == 201, again.text
    listed = (await api.http.get("/api/v1/jobs")).json()["items"]
    assert len(listed) == 2, "the refused start stored nothing"


_DIES = """
import asyncio, sys
from pathlib import Path
from tests.scheduler.test_workers import bundle_of, limits_for
from scheduler.workers import Renderer

async def main():
    renderer = Renderer(1)
    folder = Path(sys.argv[1])
    await renderer.render(bundle_of(folder), limits_for(folder))
    print(*renderer.pids(), flush=True)

asyncio.run(main())
import os
os._exit(0)  # as a SIGKILL would: no shutdown of the pool
"""


def test_a_server_that_dies_without_closing_leaves_no_worker(iris: Path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _DIES, str(iris)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        check=True,
    )
    pids = [int(p) for p in done.stdout.split()]
    assert pids, done.stderr
    wait_gone(pids)


async def test_closing_stops_the_workers(iris: Path):
    renderer = Renderer(2)
    renderer.start()
    await renderer.render(bundle_of(iris), limits_for(iris))
    pids = renderer.pids()
    assert pids
    await renderer.close()
    wait_gone(pids)
    with pytest.raises(PreprocessUnavailable):
        await renderer.render(bundle_of(iris), limits_for(iris))


async def test_a_worker_keeps_what_it_imported_out_of_collections(renderer: Renderer):
    """A worker's full collection walks only what it made after it started (`common.heap`):
    the IR stack it imported is frozen."""
    assert renderer._pool is not None
    frozen = await asyncio.wrap_future(renderer._pool.submit(gc.get_freeze_count))
    assert frozen > 10_000
