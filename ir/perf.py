"""`paused_gc`: run a block with Python's cyclic garbage collector paused.

Pure, no I/O. Loading and pre-processing build large acyclic trees (dicts, lists, pydantic
models); each allocation burst triggers collections whose cost grows with everything already
alive, which made pre-processing superlinear (measured in bench/preprocess.py: 5,000 flows took
8x the time of 1,000). Reference counting still frees everything; cycles, if any, are collected
when the collector resumes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic collector for the block (re-entrant; restores the previous state)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
