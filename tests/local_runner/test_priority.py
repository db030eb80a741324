"""A job's processes at lower CPU priority (`local_runner.priority`), on real processes: each
started in its own session gets the nice value and its session's autogroup gets it too, also
when several start at once (the kernel takes one autogroup change per 100 ms from a user); what
they fork inherits both; nice 0 changes nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from local_runner.priority import JOB_NICE
from local_runner.processes import start_session
from scheduler.config import Settings
from tests.autogroups import AUTOGROUPS, autogroup_nice


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Wait for `condition()` to be true, checking every 20 ms."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.02)


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(c) for c in text.split()]


async def test_processes_started_at_once_all_get_the_nice_value_and_their_autogroups_too(
    tmp_path: Path,
):
    # each a shell (its own session) that forks a sleep: the child must be lowered too
    started = [
        start_session(
            ["sh", "-c", "sleep 60 & wait"], log=tmp_path / f"{i}.log", env={}, cwd=tmp_path, nice=7
        )
        for i in range(4)
    ]
    try:
        await until(lambda: all(children(p.pid) for p in started))
        expected = 7 if AUTOGROUPS else None
        await until(lambda: all(autogroup_nice(p.pid) == expected for p in started))
        for popen in started:
            [child] = children(popen.pid)
            assert os.getpriority(os.PRIO_PROCESS, popen.pid) == 7
            assert os.getpriority(os.PRIO_PROCESS, child) == 7
            assert autogroup_nice(child) == expected
        assert os.getpriority(os.PRIO_PROCESS, 0) == 0  # ours: unchanged
        assert autogroup_nice(os.getpid()) in (0, None)
    finally:
        for popen in started:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()


@pytest.mark.skipif(not AUTOGROUPS, reason="this kernel has no autogroups (sched(7))")
def test_nice_zero_leaves_a_process_at_our_priority(tmp_path: Path):
    popen = start_session(["sleep", "60"], log=tmp_path / "log", env={}, cwd=tmp_path, nice=0)
    try:
        assert os.getpriority(os.PRIO_PROCESS, popen.pid) == 0
        assert autogroup_nice(popen.pid) == 0
        assert (
            Path(f"/proc/{popen.pid}/autogroup").read_text()
            != Path("/proc/self/autogroup").read_text()
        )  # its own session, its own autogroup
    finally:
        popen.kill()
        popen.wait()


def test_a_process_that_cannot_start_raises(tmp_path: Path):
    with pytest.raises(OSError):
        start_session(["/nonexistent/program"], log=tmp_path / "log", env={}, cwd=tmp_path, nice=7)


UNPRIVILEGED = """
import asyncio, json, os, pathlib, sys, time
from local_runner.priority import JOB_NICE
from local_runner.processes import start_session
from scheduler.config import Settings
from tests.autogroups import AUTOGROUPS, autogroup_nice

async def main(folder):
    started = [
        start_session(["sleep", "60"], log=folder / f"{i}.log", env={}, cwd=folder, nice=7)
        for i in range(4)
    ]
    deadline = time.monotonic() + 10
    def nice(pid):
        return pathlib.Path(f"/proc/{pid}/autogroup").read_text().split(" nice ")[1].strip()
    while time.monotonic() < deadline and any(nice(p.pid) != "7" for p in started):
        await asyncio.sleep(0.02)
    took = time.monotonic() - deadline + 10
    print(json.dumps({"uid": os.getuid(), "nice": [nice(p.pid) for p in started], "took": took}))
    for p in started:
        p.kill()

asyncio.run(main(pathlib.Path(sys.argv[1])))
"""


@pytest.mark.skipif(not AUTOGROUPS, reason="this kernel has no autogroups (sched(7))")
def test_an_unprivileged_server_changes_every_autogroup_despite_the_kernels_rate_limit():
    """The kernel refuses a second autogroup change within 100 ms (`EAGAIN`) to a user without
    CAP_SYS_ADMIN: run as `nobody` when the tests run as root (in a folder it may write)."""
    with tempfile.TemporaryDirectory() as folder:
        Path(folder).chmod(0o777)
        command = [sys.executable, "-c", UNPRIVILEGED, folder]
        if os.getuid() == 0:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said["uid"] == (os.getuid() or 65534) and said["nice"] == ["7"] * 4, said
    assert said["took"] >= 0.3, said  # three waits for the kernel's rate: that path was taken


def test_the_servers_default_is_the_runners():
    assert Settings.model_fields["job_nice"].default == JOB_NICE == 10
