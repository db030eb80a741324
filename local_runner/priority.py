"""CPU priority of a job's processes: below the scheduling server's, so the server answers
(`POST /api/v1/jobs`, status, callbacks) while jobs keep every core busy (docs/local-backend.md,
"CPU priority").

Every job process starts its own session (`local_runner.processes`), and Linux gives each
session its own *autogroup* (`sched(7)`): while autogroups are on (the default of Debian's and
most distributions' kernels) the CPU is shared between sessions first, each weighing as much
as the server's whatever the nice value of its processes. So a job's priority is lowered twice,
to the same nice value: its session's autogroup (`/proc/<pid>/autogroup`, shared by every
process of the session, those it forks later too) and its process group's nice value (what
counts where autogroups are off or the server runs in a cgroup of its own, e.g. a systemd
service). An unprivileged user may raise a nice value but the kernel takes one autogroup
change per 100 ms from it (`EAGAIN` before), so the autogroup writes wait in a queue drained on
the event loop. Not a security boundary: a job may lower its autogroup's nice value back to 0
(never below), which only gives back the server's head start.

Does I/O: `setpriority(2)` and writes under /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
from collections import deque
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


def lower(popen: subprocess.Popen[bytes], nice: int) -> None:
    """Give the process `popen` (a session and process-group leader we just started) and
    everything in its session the nice value `nice`; 0 leaves them as they are."""
    if nice <= 0:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.setpriority(os.PRIO_PGRP, popen.pid, nice)
    _pending.append((popen, nice))
    if _retry_loop is None or _retry_loop.is_closed():
        _drain()


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
