"""Termination records: how a scoring service or a flow says why it stopped, for its supervisor.

The Kubernetes `terminationMessagePath` pattern: the supervisor names a file in the environment
variable `TEKSCORE_TERMINATION_LOG` (the local runner: one file per process under the job's
folder; the chart may point it at `/dev/termination-log`, which the kubelet copies into the
pod's status); the process writes one small JSON object there, and rewrites it when it knows
more. Its logs are for people; this record is the status channel no supervisor needs to scrape.

    {"reason": "Completed", "message": "...", "records_in": 150, ...}

`reason` is one CamelCase word (the service: `ModelLoadFailed`, `InvalidConfig`,
`ServiceFailed`; the flow: `Completed`, `FlowFailed`, `InvalidConfig`, `Terminated`);
`message` a full sentence; anything else is detail (a flow's final counters, a model's name).

Does file I/O: `write_termination` writes in place (a rename cannot replace a mounted file such
as `/dev/termination-log`), at most `LIMIT` bytes (the kubelet keeps 4096); `read_termination`
reads one back (at most `LIMIT` bytes). Without the variable, writing does nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

TERMINATION_ENV = "TEKSCORE_TERMINATION_LOG"
LIMIT = 4096


class TerminationRecord(BaseModel):
    """Why a process stopped (or, for a service still running, why it cannot serve)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    reason: str
    message: str = ""

    @property
    def detail(self) -> dict[str, Any]:
        """Everything but `reason` and `message` (a flow's counters, a model's name, ...)."""
        return dict(self.model_extra or {})


def termination_path(env: Mapping[str, str] | None = None) -> Path | None:
    """The file named by `TEKSCORE_TERMINATION_LOG` (in `env`, default the process's)."""
    value = (os.environ if env is None else env).get(TERMINATION_ENV)
    return Path(value) if value else None


def write_termination(reason: str, message: str, **detail: Any) -> None:
    """Write this process's termination record (nothing without `TEKSCORE_TERMINATION_LOG`).

    Never raises: a record that cannot be written must not hide the failure it reports."""
    path = termination_path()
    if path is None:
        return
    record: dict[str, Any] = {"reason": reason, "message": message, **detail}
    data = json.dumps(record, sort_keys=True, default=str).encode()
    while len(data) > LIMIT and message:  # valid JSON: cut the message, not the text
        per_char = len(json.dumps(message)) / len(message)  # escapes take several bytes
        message = message[: max(int(len(message) - (len(data) - LIMIT + 3) / per_char) - 1, 0)]
        record["message"] = message + "..."
        data = json.dumps(record, sort_keys=True, default=str).encode()
    try:
        with path.open("wb") as fh:
            fh.write(data)
    except OSError:
        pass


def read_termination(path: Path) -> TerminationRecord | None:
    """The record at `path`, or None when there is none (or it is not a record: empty, or longer
    than any record `write_termination` writes; the process may write its file freely)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(LIMIT + 1)
    except OSError:
        return None
    if len(data) > LIMIT:
        return None
    try:
        return TerminationRecord.model_validate_json(data)
    except (ValidationError, ValueError):
        return None
