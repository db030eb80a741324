"""Running a small ASGI app (metrics, the http source) inside the flow's event loop.

Does network I/O (binds a port). uvicorn's own signal handling is switched off: the flow's
runner owns SIGTERM/SIGINT. Bind host: `TEKSCORE_BIND_HOST` (default 0.0.0.0, so probes and
scrapes reach a pod; the local backend may set 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Generator
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind_host() -> str:
    """The address servers of the flow listen on."""
    return os.environ.get("TEKSCORE_BIND_HOST") or "0.0.0.0"


class RunningServer:
    """An ASGI app served in the background; `await stop()` ends it."""

    def __init__(self, app: Any, *, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        self.host = host
        self.port = port

    async def start(self, wait: float = 10.0) -> None:
        """Bind the port (OSError when it cannot) and start serving."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        self.port = int(sock.getsockname()[1])
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        deadline = asyncio.get_running_loop().time() + wait
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise OSError("the server stopped while starting (is the port free?)")
            if asyncio.get_running_loop().time() > deadline:
                raise OSError("the server did not start in time")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop serving and wait for it."""
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception, SystemExit):
            await self._task
        self._task = None
