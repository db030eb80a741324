"""The `JobStore` protocol: what the job service needs from where jobs are kept.

No I/O here. Two implementations: `scheduler.stores.sqlite.SqliteStore` (the local backend) and
`scheduler.stores.kubernetes.PipelineRunStore` (the PipelineRun is the job). The service does
not know which it holds.

Every change of a stored job goes through `update(job_id, change)`: the store reads the job as
it is now, calls `change` (pure: the job service's rules) and writes what it returns, atomically
with respect to every other writer: SQLite under its one write lock; on Kubernetes a merge-patch
carrying the `resourceVersion` it read, read again and re-applied on a 409 conflict (another
replica wrote first). So a rule never decides on a stale job.

Errors::

    StoreError          the store cannot do what was asked (a full disk, a conflict that never
    │                   settles)
    └── DuplicateKey    the job id or idempotency key of a create is taken (a concurrent start
                        with the same key): the service replays it
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ir.bundle import JobBundle
from scheduler.schemas import EventPublic, JobQuery, JobRecord


class StoreError(Exception):
    """The store could not do what was asked."""


class DuplicateKey(StoreError):
    """The idempotency key (or the job id derived from it) is taken by a concurrent start."""


@dataclass(frozen=True)
class Write:
    """What a change writes: the job after it, and the event of its transition (None for a
    change that is no transition, such as a flow's counters)."""

    job: JobRecord
    event: EventPublic | None = None


Change = Callable[[JobRecord], Write | None]
"""A job's change, decided on the job as stored now; None: nothing to write. Pure: a store may
call it again on the job as another writer left it."""


class JobStore(Protocol):
    """Where jobs are kept."""

    def new_id(self, idempotency_key: str | None) -> str:
        """The id of a new job (on Kubernetes derived from the Idempotency-Key, so every replica
        starting the same key meets the same PipelineRun)."""
        ...

    async def idempotency(self, key: str) -> tuple[str, str] | None:
        """(body hash, job id) of the start that used this Idempotency-Key, if any."""
        ...

    async def create(
        self,
        job: JobRecord,
        bundle: JobBundle,
        event: EventPublic,
        *,
        values: Mapping[str, Any],
        idempotency: tuple[str, str] | None = None,
    ) -> JobRecord:
        """Keep a new job with its bundle, the values rendered from it, its first event and its
        (Idempotency-Key, body hash); the job as stored. `DuplicateKey` when the key is taken."""
        ...

    async def get(self, job_id: str) -> JobRecord | None:
        """A job, or None."""
        ...

    async def get_public(self, job_id: str) -> bytes | None:
        """The job's public JSON (what `GET /jobs/{id}` answers), or None."""
        ...

    async def list_public(self, query: JobQuery) -> bytes:
        """A page of jobs, newest first, as the JSON of `JobsPublic`; `BadCursor` for a cursor
        this store never gave out."""
        ...

    async def count_by_state(self) -> dict[str, int]:
        """How many jobs are in each state."""
        ...

    async def bundle(self, job_id: str) -> JobBundle | None:
        """What the job was started from (what the install task downloads), or None."""
        ...

    async def values(self, job_id: str) -> dict[str, Any] | None:
        """The values rendered at the job's start; None when the store has none for it."""
        ...

    async def save_values(self, job_id: str, values: Mapping[str, Any]) -> None:
        """Keep the values rendered for a job stored without them (where the store can)."""
        ...

    async def events(self, job_id: str) -> list[EventPublic]:
        """The job's state history, oldest first."""
        ...

    async def update(self, job_id: str, change: Change) -> tuple[JobRecord, JobRecord | None]:
        """Apply `change` to the job as stored now and write what it returns (see the module
        docstring): (the job as read, the job as stored after the write, or None when `change`
        wrote nothing). `JobNotFound` when there is no such job."""
        ...

    async def unfinished(self) -> list[JobRecord]:
        """Every job not yet SUCCEEDED, FAILED or CANCELLED, oldest first."""
        ...

    async def problems(self) -> list[str]:
        """What keeps the store from serving now (empty when it can)."""
        ...
