"""Pre-processing off the event loop: `render_within` in worker processes.

Does I/O (worker processes). Pre-processing a start or validate request is CPU-bound Python; in
a thread of the server it holds the GIL against the event loop, which also answers every other
request and the running jobs' reports. `Renderer` runs it in a small process pool instead
(`TEKSCORE_PREPROCESS_WORKERS`, 0: in a thread as before). `render_within` is pure (a bundle
and the limits in, the values out), so a worker needs nothing else; both cross the process
boundary pickled (a few kB).

- The workers are forked from multiprocessing's fork server (a clean process started once per
  server process, `scheduler.limits` imported there), never from the server, whose threads
  (SQLite, the pool's own) make a plain fork unsafe. `start` pre-starts one worker in the
  lifespan without waiting for it, so the first request does not pay the start-up.
  A worker freezes what it imported out of the garbage collector (`common.heap`).
- An IR problem comes back as the same `IRValidationError` (422, every issue with file, line
  and path): the worker returns the issues, the server raises them.
- A worker that dies (killed, out of memory, a crash in a C extension) fails the requests it
  had with `PreprocessUnavailable` (503, retry), and the pool is replaced: the server itself
  never runs a request that killed a worker, and the next request gets a fresh worker.
- A server that dies without closing the pool (SIGKILL) leaves no worker behind: a worker's
  parent is the fork server, and its queues never see the end of file, so each worker watches
  the server's pid (every `_WATCH` seconds) and exits when it is gone.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import structlog

from common.heap import freeze_startup
from ir import IRValidationError, Issue, JobBundle, Rendered
from scheduler.errors import PreprocessUnavailable
from scheduler.limits import JobLimits, render_within

log = structlog.get_logger("scheduler.workers")

_PRELOAD = ["scheduler.limits"]
_WATCH = 1.0


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _watch(server: int) -> None:
    """In a worker: exit when the server process is gone."""
    while _alive(server):
        time.sleep(_WATCH)
    os._exit(0)


def _init(server: int) -> None:
    threading.Thread(target=_watch, args=(server,), daemon=True, name="server-watch").start()
    freeze_startup()  # the IR stack it imported, out of every later collection's walk


def _render(bundle: JobBundle, limits: JobLimits | None) -> Rendered | list[Issue]:
    """In a worker: the rendered job, or the issues of its `IRValidationError` (the exception
    itself does not survive pickling: its arguments are its message)."""
    try:
        return render_within(bundle, limits)
    except IRValidationError as exc:
        return list(exc.issues)


def _ready() -> bool:
    return True


class Renderer:
    """Pre-processes requests in `workers` worker processes, or in a thread (`workers=0`)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    def start(self) -> None:
        """Start the pool and one worker (not waited for: a request sent meanwhile queues)."""
        if self.workers > 0 and self._pool is None and not self._closed:
            self._pool = self._new_pool()
            self._pool.submit(_ready)

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=context,
            initializer=_init,
            initargs=(os.getpid(),),
        )

    async def render(self, bundle: JobBundle, limits: JobLimits | None) -> Rendered:
        """`render_within(bundle, limits)`, off the event loop; `IRValidationError` as it
        raises; `PreprocessUnavailable` when the worker died with the request."""
        if self.workers == 0:
            return await asyncio.to_thread(render_within, bundle, limits)
        if self._pool is None:
            self.start()
        pool = self._pool
        if pool is None:  # closed
            raise PreprocessUnavailable("the server is shutting down")
        try:
            result = await asyncio.get_running_loop().run_in_executor(pool, _render, bundle, limits)
        except BrokenProcessPool as exc:
            self._replace(pool, exc)
            raise PreprocessUnavailable(
                "the pre-processing worker stopped unexpectedly while handling this request "
                "(the server started a new one): retry"
            ) from None
        if isinstance(result, list):
            raise IRValidationError(result)
        return result

    def _replace(self, broken: Executor, exc: BaseException) -> None:
        """A fresh pool for the next requests (once, however many requests saw it break)."""
        if self._pool is not broken or self._closed:
            return
        log.error("pre-processing worker died: pool replaced", error=str(exc))
        broken.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def pids(self) -> list[int]:
        """The worker processes' ids (for diagnostics and tests)."""
        processes = getattr(self._pool, "_processes", None) or {}
        return sorted(int(pid) for pid in processes)

    async def close(self) -> None:
        """Stop the workers (waiting in a thread, not on the loop)."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
