"""CPU priority of a job's processes: below the scheduling server's, so the server answers
(`POST /api/v1/jobs`, status, callbacks) while jobs keep every core busy (docs/local-backend.md,
"CPU priority").

Every job process starts its own session (`local_runner.processes`), and Linux gives each
session its own *autogroup* (`sched(7)`): while autogroups are on (the default of Debian's and
most distributions' kernels) the CPU is shared between sessions first, each weighing as much
as the server's whatever the nice value of its processes. So a job's priority is lowered twice,
to the same nice value: its own nice value, inherited by what it forks (what counts where
autogroups are off or the server runs in a cgroup of its own, e.g. a systemd service), and its
session's autogroup (`/proc/<pid>/autogroup`, shared by every process of the session).

The nice value is the forking thread's: `start` forks on a thread of ours that runs at that
nice value, so the child has it before it runs a line (a `setpriority` after the fork races
with what the child forks at once: the kernel may miss a child not yet in the process group).
An unprivileged user may raise a nice value but the kernel takes one autogroup change per
100 ms from it (`EAGAIN` before), so the autogroup writes wait in a queue drained on the event
loop. Not a security boundary: a job may lower its autogroup's nice value back to 0 (never
below), which only gives back the server's head start.

Does I/O: forks (on its spawning threads), `setpriority(2)` and writes under /proc.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog

JOB_NICE = 10
"""The default nice value of a job's processes (`TEKSCORE_JOB_NICE`): CPU weight 110 against
the server's 1024 (`sched(7)`), i.e. the server gets its share of a busy core within a few ms."""
RETRY_SECONDS = 0.11
"""Wait after an autogroup change the kernel refused for its rate (one per 100 ms)."""
PROC = Path("/proc")

log = structlog.get_logger("local_runner.priority")
_pending: deque[tuple[subprocess.Popen[bytes], int]] = deque()  # waiting for their autogroup
_retry_loop: asyncio.AbstractEventLoop | None = None  # the loop a retry is scheduled on


def start(fork: Callable[[], subprocess.Popen[bytes]], nice: int) -> subprocess.Popen[bytes]:
    """Start a process with `fork` (e.g. a `subprocess.Popen` of a new session) at nice value
    `nice`, and queue its session's autogroup change to the same value; 0 starts it as it is.
    Raises what `fork` raises."""
    if nice <= 0:
        return fork()
    popen = _spawner(nice).submit(fork).result()
    _pending.append((popen, nice))
    if _retry_loop is None or _retry_loop.is_closed():
        _drain()
    return popen


_spawners: dict[int, ThreadPoolExecutor] = {}
_spawners_lock = threading.Lock()


def _spawner(nice: int) -> ThreadPoolExecutor:
    """The thread that forks the processes of nice value `nice` (one per value, kept)."""
    with _spawners_lock:
        if nice not in _spawners:
            _spawners[nice] = ThreadPoolExecutor(
                1, thread_name_prefix=f"spawn-nice{nice}", initializer=_own_nice, initargs=(nice,)
            )
        return _spawners[nice]


def _own_nice(nice: int) -> None:
    """Set the calling thread's nice value (a per-thread attribute on Linux, copied at fork)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as exc:
        log.warning("nice value unchanged", nice=nice, error=str(exc))


def _drain() -> None:
    """Write the waiting autogroup changes, oldest first, until the kernel says `EAGAIN`; then
    try again in `RETRY_SECONDS` on the running event loop (without one, the rest is dropped:
    their process groups' nice values stay). A process reaped (its pid may be another's now),
    gone, or a kernel without autogroups drops its entry."""
    global _retry_loop
    _retry_loop = None
    while _pending:
        popen, nice = _pending[0]
        try:
            if popen.returncode is None:  # not reaped: the pid is still this process's
                (PROC / str(popen.pid) / "autogroup").write_text(f"{nice}\n")
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                try:
                    _retry_loop = asyncio.get_running_loop()
                except RuntimeError:
                    _pending.clear()
                    return
                _retry_loop.call_later(RETRY_SECONDS, _drain)
                return
            log.debug("autogroup unchanged", pid=popen.pid, error=str(exc))
        _pending.popleft()
