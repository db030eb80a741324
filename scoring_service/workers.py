"""Readiness across `--workers N` processes: the service is ready only when every worker is.

Does file I/O. Each uvicorn worker loads its own copy of the models; a request to
`/v2/health/ready` reaches one worker at random, so each worker that finished loading drops a
`<pid>` file into a folder shared by the server (`TEKSCORE_READY_DIR`), and readiness counts the
files of live workers. With one process there is no folder and nothing to count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

READY_DIR_ENV = "TEKSCORE_READY_DIR"


@dataclass(frozen=True)
class WorkerReadiness:
    """The shared folder and how many workers must be ready."""

    folder: Path
    expected: int

    @classmethod
    def from_env(cls, expected: int) -> WorkerReadiness | None:
        folder = os.environ.get(READY_DIR_ENV)
        return cls(Path(folder), expected) if folder and expected > 1 else None

    def mark_ready(self) -> None:
        """This worker has loaded every model."""
        (self.folder / str(os.getpid())).touch()

    def ready_count(self) -> int:
        """Workers that are alive and have loaded their models."""
        count = 0
        for path in self.folder.iterdir():
            if path.name.isdigit() and _alive(int(path.name)):
                count += 1
        return count


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
