"""The flow's allocator tuning: freed memory stays in the process for the next batch."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are a glibc feature"
)

# allocate 64 MiB in 1 KiB blocks (above pymalloc's 512 bytes: served by malloc), free them all,
# and print how much of it the process still holds (RSS after the free minus RSS before)
PROBE = """
import sys
from pathlib import Path
def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
if sys.argv[1] == "tuned":
    from scoring_flow.allocator import keep_freed_memory
    assert keep_freed_memory(256 << 20)
before = rss()
blocks = [bytes(1024) for _ in range(65536)]
del blocks
print(rss() - before)
"""


def kept_kib(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def test_freed_memory_is_kept_for_reuse_only_when_tuned() -> None:
    # glibc's default gives the freed heap top back to the OS at once: the next batch pays the
    # page faults again; tuned, the memory stays for reuse
    assert kept_kib("default") < 8 * 1024
    assert kept_kib("tuned") > 48 * 1024
