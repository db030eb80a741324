"""Reading a process's session autogroup (`sched(7)`), for the tests of job CPU priority."""

from __future__ import annotations

from pathlib import Path

AUTOGROUPS = Path("/proc/self/autogroup").exists()


def autogroup_nice(pid: int) -> int | None:
    """The nice value of `pid`'s session's autogroup (None on a kernel without autogroups)."""
    if not AUTOGROUPS:
        return None
    return int(Path(f"/proc/{pid}/autogroup").read_text().split(" nice ")[1])
