"""Reading a process's session autogroup (`sched(7)`), for the tests of job CPU priority."""

from __future__ import annotations

from pathlib import Path

AUTOGROUPS = Path("/proc/self/autogroup").exists()


def autogroup_nice(pid: int) -> int | None:
    """The nice value of `pid`'s session's autogroup: None on a kernel without autogroups, or
    for a process in the root one (the session of pid 1, never `setsid` since boot: the kernel
    prints nothing for it, e.g. CI's runner)."""
    if not AUTOGROUPS:
        return None
    text = Path(f"/proc/{pid}/autogroup").read_text()
    return int(text.split(" nice ")[1]) if text else None
