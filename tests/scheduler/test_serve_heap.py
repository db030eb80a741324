"""`tekscore serve`'s uvicorn server (`scheduler.cli.serve.serving`), run for real on a loopback
port: once started, what start-up made is out of the garbage collector's walks
(`common.heap`), so a full collection while serving no longer walks the app."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from common.ports import free_port
from scheduler.cli.serve import serving


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The test process's heap as the test found it: frozen objects are thawed after."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_a_started_server_keeps_its_start_up_objects_out_of_collections(unfrozen: None):
    started_with: list[int] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started_with.append(gc.get_freeze_count())
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/frozen")
    def frozen() -> dict[str, int]:
        return {"frozen": gc.get_freeze_count()}

    port = free_port()
    server = serving(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        answer = httpx.get(f"http://127.0.0.1:{port}/frozen", timeout=10).json()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert started_with == [0]  # nothing was frozen while the lifespan ran
    # serving, the whole heap of start-up (modules, the app, its routes) is frozen
    assert answer["frozen"] > 10_000
