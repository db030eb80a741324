"""Writing files atomically: a reader sees the old content or the new, never half a file.

Does file I/O. The data goes to a temporary file in the target's folder (same file system), is
flushed to disk, and is renamed over the target; on any failure the temporary file is removed.
New files get the usual permissions (0666 minus the umask).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: Path, *, fsync: bool = True) -> Iterator[Path]:
    """A new, empty temporary file beside `path` to write; renamed over `path` when the block
    succeeds, removed when it raises. With `fsync`, it is synced to disk before the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, data: str | bytes, *, fsync: bool = True) -> None:
    """Write `data` (text as UTF-8) to `path` atomically; creates the parent folder."""
    with replacing(path, fsync=fsync) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
