"""The job store of the local backend: SQLite in WAL mode at `$TEKSCORE_HOME/state.db`.

Does I/O (aiosqlite). Holds each job's record (as JSON, with its state, pipeline, labels and a
sequence number indexed for filtering and cursor pagination), the bundle it was started from,
its events, and the idempotency keys of start requests. A job and the event of its transition
are written in one transaction, so a crash never leaves one without the other.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from pathlib import Path

import aiosqlite

from scheduler.schemas import EventPublic, JobRecord
from scheduler.states import FINISHED, State
from tekton.bundle import JobBundle

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    labels TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, seq);
CREATE INDEX IF NOT EXISTS jobs_pipeline ON jobs (pipeline, seq);
CREATE TABLE IF NOT EXISTS bundles (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id, n);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    body_hash TEXT NOT NULL,
    job_id TEXT NOT NULL
);
"""


class StoreError(Exception):
    """The store could not do what was asked."""


class DuplicateKey(StoreError):
    """The idempotency key is taken (by a concurrent request)."""


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The sequence number in a cursor; ValueError when it is not one of ours."""
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        value = int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a valid cursor: {cursor!r}") from exc
    if value < 0:
        raise ValueError(f"not a valid cursor: {cursor!r}")
    return value


class Store:
    """Async access to the SQLite database; build with `await Store.open(path)`."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._writing = asyncio.Lock()  # one connection: one transaction at a time

    @classmethod
    async def open(cls, path: Path) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA busy_timeout=5000")
        await db.executescript(_SCHEMA)
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        """Raise when the database cannot answer."""
        await (await self._db.execute("SELECT 1")).fetchone()

    async def create(
        self,
        job: JobRecord,
        bundle: JobBundle,
        event: EventPublic,
        *,
        idempotency: tuple[str, str] | None = None,
    ) -> None:
        """Insert a new job with its bundle, first event and idempotency key, atomically."""
        async with self._writing:
            await self._create(job, bundle, event, idempotency)

    async def _create(
        self,
        job: JobRecord,
        bundle: JobBundle,
        event: EventPublic,
        idempotency: tuple[str, str] | None,
    ) -> None:
        try:
            await self._db.execute("BEGIN IMMEDIATE")
            await self._db.execute(
                "INSERT INTO jobs (id, state, pipeline, labels, data) VALUES (?, ?, ?, ?, ?)",
                (job.id, job.state, job.pipeline, _labels(job), job.model_dump_json()),
            )
            await self._db.execute(
                "INSERT INTO bundles (id, data) VALUES (?, ?)", (job.id, bundle.model_dump_json())
            )
            await self._insert_event(job.id, event)
            if idempotency is not None:
                await self._db.execute(
                    "INSERT INTO idempotency (key, body_hash, job_id) VALUES (?, ?, ?)",
                    (idempotency[0], idempotency[1], job.id),
                )
            await self._db.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            await self._db.execute("ROLLBACK")
            raise DuplicateKey(str(exc)) from exc
        except BaseException:
            await self._db.execute("ROLLBACK")
            raise

    async def save(self, job: JobRecord, event: EventPublic | None = None) -> None:
        """Update a job (and record the event of its transition) atomically."""
        async with self._writing:
            await self._save(job, event)

    async def _save(self, job: JobRecord, event: EventPublic | None) -> None:
        try:
            await self._db.execute("BEGIN IMMEDIATE")
            await self._db.execute(
                "UPDATE jobs SET state = ?, labels = ?, data = ? WHERE id = ?",
                (job.state, _labels(job), job.model_dump_json(), job.id),
            )
            if event is not None:
                await self._insert_event(job.id, event)
            await self._db.execute("COMMIT")
        except BaseException:
            await self._db.execute("ROLLBACK")
            raise

    async def _insert_event(self, job_id: str, event: EventPublic) -> None:
        await self._db.execute(
            "INSERT INTO events (job_id, data) VALUES (?, ?)", (job_id, event.model_dump_json())
        )

    async def get(self, job_id: str) -> JobRecord | None:
        row = await (
            await self._db.execute("SELECT data FROM jobs WHERE id = ?", (job_id,))
        ).fetchone()
        return JobRecord.model_validate_json(row[0]) if row else None

    async def bundle(self, job_id: str) -> JobBundle | None:
        cursor = await self._db.execute("SELECT data FROM bundles WHERE id = ?", (job_id,))
        row = await cursor.fetchone()
        return JobBundle.model_validate_json(row[0]) if row else None

    async def events(self, job_id: str) -> list[EventPublic]:
        cursor = await self._db.execute(
            "SELECT data FROM events WHERE job_id = ? ORDER BY n", (job_id,)
        )
        return [EventPublic.model_validate_json(r[0]) for r in await cursor.fetchall()]

    async def idempotency(self, key: str) -> tuple[str, str] | None:
        """(body hash, job id) stored for an idempotency key."""
        cursor = await self._db.execute(
            "SELECT body_hash, job_id FROM idempotency WHERE key = ?", (key,)
        )
        row = await cursor.fetchone()
        return (str(row[0]), str(row[1])) if row else None

    async def list_jobs(
        self,
        *,
        state: State | None = None,
        pipeline: str | None = None,
        labels: dict[str, str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[JobRecord], str | None]:
        """A page of jobs, newest first, and the cursor of the next page."""
        where: list[str] = []
        args: list[object] = []
        if state is not None:
            where.append("state = ?")
            args.append(str(state))
        if pipeline is not None:
            where.append("pipeline = ?")
            args.append(pipeline)
        for key, value in (labels or {}).items():
            where.append("json_extract(labels, ?) = ?")
            args += [f'$."{key}"', value]
        if cursor is not None:
            where.append("seq < ?")
            args.append(decode_cursor(cursor))
        sql = "SELECT seq, data FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit + 1)
        rows = list(await (await self._db.execute(sql, args)).fetchall())
        more = len(rows) > limit
        rows = rows[:limit]
        jobs = [JobRecord.model_validate_json(r[1]) for r in rows]
        return jobs, encode_cursor(int(rows[-1][0])) if more else None

    async def unfinished(self) -> list[JobRecord]:
        """Every job not yet SUCCEEDED, FAILED or CANCELLED, oldest first."""
        marks = ",".join("?" for _ in FINISHED)
        cursor = await self._db.execute(
            f"SELECT data FROM jobs WHERE state NOT IN ({marks}) ORDER BY seq",  # noqa: S608
            [str(s) for s in FINISHED],
        )
        return [JobRecord.model_validate_json(r[0]) for r in await cursor.fetchall()]

    async def count_by_state(self) -> dict[str, int]:
        cursor = await self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        return {str(r[0]): int(r[1]) for r in await cursor.fetchall()}


def _labels(job: JobRecord) -> str:
    return json.dumps(job.labels, sort_keys=True)
