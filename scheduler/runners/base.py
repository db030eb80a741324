"""The `Runner` protocol: what the job service needs from what runs a job's pipeline.

No I/O here. Two implementations: `scheduler.runners.local.LocalRunner` (install, wait and
finally as asyncio tasks of this process, services and flows as local processes) and
`scheduler.runners.tekton.TektonRunner` (Tekton runs the PipelineRun; the runner stops it by
patch). A runner reports what its tasks do through the job service (`transition`, `complete`,
`fail`); the service tells it to `start` a new job and to `stop` one whose scoring it ended
(after recording why), so that the finally task runs.

A runner is built by a `RunnerFactory` from the job service it reports to, inside the
service's constructor: no half-built service ever exists.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from scheduler.schemas import BackendInfo, JobRecord

if TYPE_CHECKING:
    from scheduler.jobs import JobService


class Runner(Protocol):
    """What the job service needs from a runner."""

    kind: str
    """`local` or `tekton` (the job's `backend.kind`)."""

    ends_during_install: bool
    """Whether a flow's completion (or failure) reported while the job installs ends the job
    at once. False when the runner's install task asks the service again when it ends (local);
    True when it cannot (Tekton: install runs in a pod), so the service decides then."""

    def info(self, job_id: str) -> BackendInfo:
        """Where a job runs (for its status)."""
        ...

    async def start(self, job: JobRecord, values: dict[str, Any]) -> None:
        """Begin the new job's pipeline (`values`: its values as pre-processed, also stored)."""
        ...

    async def stop(self, job: JobRecord) -> None:
        """End the job's install or wait task now: its scoring ended (`job.outcome` says how,
        `job.message` why); its finally task still runs."""
        ...

    def observe(self, job: JobRecord) -> None:
        """After a flow report was stored: the job as it is now."""
        ...

    async def recover(self, jobs: list[JobRecord]) -> None:
        """At start-up: pick up the unfinished jobs of a previous run."""
        ...

    async def close(self) -> None:
        """At shutdown (running jobs keep running)."""
        ...

    async def problems(self) -> list[str]:
        """What keeps the runner from running jobs now (empty when it can)."""
        ...

    def log_files(self, job_id: str) -> dict[str, Path]:
        """A job's log files by name (`service/<name>`, `flow/<name>`), where it has any."""
        ...


RunnerFactory = Callable[["JobService"], Runner]
"""Builds the runner of a job service (called once, by the service's constructor)."""
