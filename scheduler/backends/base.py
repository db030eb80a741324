"""The interfaces behind the API.

No I/O here. `Jobs` is what the routes call: the local implementation is
`scheduler.jobs.JobService` (SQLite store, with a `Backend` running the pipelines in this
process); the Kubernetes one is `scheduler.backends.tekton.TektonJobs`, which keeps no state
of its own and reads every job back from its PipelineRun.

A `Backend` of the job service is started with the app and closed with it; `start` begins a
job's pipeline, `stop` ends its install or wait task early (after the service recorded why: a
cancel or the completion of every batch flow) so that the finally task runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import ir
from ir.bundle import JobBundle
from scheduler.limits import JobLimits
from scheduler.schemas import (
    BackendInfo,
    EventPublic,
    FlowReport,
    JobCreate,
    JobQuery,
    JobRecord,
)


class Backend(Protocol):
    """What the job service needs from a backend."""

    kind: str

    def info(self, job_id: str) -> BackendInfo:
        """Where a job runs (for its status)."""
        ...

    async def start(self, job: JobRecord) -> None:
        """Begin the job's pipeline."""
        ...

    async def stop(self, job_id: str) -> None:
        """End the job's install or wait task now; its finally task still runs."""
        ...

    def observe(self, job: JobRecord) -> None:
        """After a flow report was stored: the job as it is now."""
        ...

    async def recover(self, jobs: list[JobRecord]) -> None:
        """At start-up: pick up the unfinished jobs of a previous run."""
        ...

    async def close(self) -> None:
        """At shutdown."""
        ...

    async def ready(self) -> bool:
        """Whether the backend can run jobs now."""
        ...

    def log_files(self, job_id: str) -> dict[str, Path]:
        """A job's log files by name (`service/<name>`, `flow/<name>`), where it has any."""
        ...


class Jobs(Protocol):
    """Everything the API does with jobs."""

    kind: str
    globals: ir.GlobalValues
    channels: dict[str, str]
    base_dir: Path
    limits: JobLimits | None

    async def start(
        self, request: JobCreate, *, idempotency_key: str | None = None
    ) -> tuple[JobRecord, bool]:
        """Pre-process and start a job: (job, created); `ir.IRValidationError` for bad IR."""
        ...

    async def get(self, job_id: str) -> JobRecord:
        """A job; `JobNotFound` when unknown."""
        ...

    async def get_public(self, job_id: str) -> bytes:
        """The job's public JSON (what `GET /jobs/{id}` answers); `JobNotFound` when unknown."""
        ...

    async def list_public(self, query: JobQuery) -> bytes:
        """A page of jobs, newest first, as the JSON of `JobsPublic`."""
        ...

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel (idempotent); `JobFinished` when it already ended."""
        ...

    async def report(self, job_id: str, flow: str, report: FlowReport, *, final: bool) -> JobRecord:
        """A flow's progress or completion."""
        ...

    async def events(self, job_id: str) -> list[EventPublic]:
        """The job's state history."""
        ...

    async def bundle(self, job_id: str) -> JobBundle:
        """What the install task downloads."""
        ...

    async def values(self, job_id: str) -> dict[str, Any]:
        """The job's values file, redacted."""
        ...

    async def count_by_state(self) -> dict[str, int]:
        """How many jobs are in each state."""
        ...

    async def ready(self) -> list[str]:
        """Problems that keep the server from serving (empty when ready)."""
        ...

    def log_files(self, job_id: str) -> dict[str, Path]:
        """A job's log files by name, where the backend keeps any."""
        ...
