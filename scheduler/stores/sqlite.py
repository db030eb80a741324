"""The job store of the local backend (a `JobStore`): SQLite in WAL mode at
`$TEKSCORE_HOME/state.db`.

Does I/O (aiosqlite). Holds each job's record (as JSON, with its state, pipeline, labels and a
sequence number indexed for filtering and cursor pagination), the bundle it was started from
and the values pre-processing rendered from it at start (so nothing renders it again), its
events, and the idempotency keys of start requests. A job and the event of its transition
are written in one transaction, so a crash never leaves one without the other. Each job is kept
twice: the whole record (`data`) and its public JSON (`public`), so a GET or a list page is
served as stored text without parsing and serialising models; labels (fixed at start) have
an index table of their own for filters. `update` reads, decides and writes under the one write
lock, so no other writer comes in between.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from ir.bundle import JobBundle
from scheduler.errors import BadCursor, JobNotFound
from scheduler.rules import new_job_id
from scheduler.schemas import EventPublic, JobQuery, JobRecord, decode_cursor, encode_cursor
from scheduler.states import FINISHED
from scheduler.stores.base import Change, DuplicateKey, StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    labels TEXT NOT NULL,
    data TEXT NOT NULL,
    public TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS job_labels (
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (key, value, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, seq);
CREATE INDEX IF NOT EXISTS jobs_pipeline ON jobs (pipeline, seq);
CREATE TABLE IF NOT EXISTS bundles (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    rendered TEXT NOT NULL DEFAULT ''
);
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


class SqliteStore:
    """Async access to the SQLite database; build with `await SqliteStore.open(path)`."""

    def __init__(self, db: aiosqlite.Connection, reader: sqlite3.Connection) -> None:
        self._db = db
        self._reader = reader
        self._writing = asyncio.Lock()  # one connection: one transaction at a time

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        """Open (or create) the database; `StoreError` saying which file and why when it cannot
        be used (its connection closed again, so nothing keeps the process alive)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        reader: sqlite3.Connection | None = None
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA busy_timeout=5000")
            await _migrate(db)
            await db.executescript(_SCHEMA)
            # the hot reads (get, list) run on the event loop through a read-only connection:
            # an indexed read takes less time than a round trip to aiosqlite's thread (WAL lets
            # it read while the writer writes; it sees every committed transaction)
            reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            reader.execute("PRAGMA query_only=1")
        except (sqlite3.Error, ValueError) as exc:
            if reader is not None:
                reader.close()
            await db.close()
            raise StoreError(f"cannot open the job store {path}: {exc}") from exc
        return cls(db, reader)

    async def close(self) -> None:
        self._reader.close()
        await self._db.close()

    async def ping(self) -> None:
        """Raise when the database cannot answer."""
        await (await self._db.execute("SELECT 1")).fetchone()

    async def problems(self) -> list[str]:
        try:
            await self.ping()
        except Exception as exc:
            return [f"store: {exc}"]
        return []

    def new_id(self, idempotency_key: str | None) -> str:
        """A random id (the key, if any, is kept in a table of its own)."""
        return new_job_id()

    async def create(
        self,
        job: JobRecord,
        bundle: JobBundle,
        event: EventPublic,
        *,
        values: Mapping[str, Any],
        idempotency: tuple[str, str] | None = None,
    ) -> JobRecord:
        """Insert a new job with its bundle and rendered values, first event and idempotency
        key, atomically."""
        async with self._writing:
            await self._create(job, bundle, orjson.dumps(values).decode(), event, idempotency)
        return job

    async def _create(
        self,
        job: JobRecord,
        bundle: JobBundle,
        rendered: str,
        event: EventPublic,
        idempotency: tuple[str, str] | None,
    ) -> None:
        try:
            await self._db.execute("BEGIN IMMEDIATE")
            cursor = await self._db.execute(
                "INSERT INTO jobs (id, state, pipeline, labels, data, public)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    job.state,
                    job.pipeline,
                    _labels(job),
                    job.model_dump_json(),
                    _public(job),
                ),
            )
            await self._db.executemany(
                "INSERT INTO job_labels (key, value, seq) VALUES (?, ?, ?)",
                [(k, v, cursor.lastrowid) for k, v in job.labels.items()],
            )
            await self._db.execute(
                "INSERT INTO bundles (id, data, rendered) VALUES (?, ?, ?)",
                (job.id, bundle.model_dump_json(), rendered),
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

    async def update(self, job_id: str, change: Change) -> tuple[JobRecord, JobRecord | None]:
        """Read, decide and write under the write lock (see `JobStore.update`)."""
        async with self._writing:
            job = await self.get(job_id)
            if job is None:
                raise JobNotFound(job_id)
            write = change(job)
            if write is None:
                return job, None
            await self._save(write.job, write.event)
        return job, write.job

    async def _save(self, job: JobRecord, event: EventPublic | None) -> None:
        try:
            await self._db.execute("BEGIN IMMEDIATE")
            await self._db.execute(
                "UPDATE jobs SET state = ?, data = ?, public = ? WHERE id = ?",
                (job.state, job.model_dump_json(), _public(job), job.id),
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
        row = self._reader.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return JobRecord.model_validate_json(row[0]) if row else None

    async def get_public(self, job_id: str) -> bytes | None:
        """The job's public JSON, as stored."""
        row = self._reader.execute("SELECT public FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return str(row[0]).encode() if row else None

    async def bundle(self, job_id: str) -> JobBundle | None:
        cursor = await self._db.execute("SELECT data FROM bundles WHERE id = ?", (job_id,))
        row = await cursor.fetchone()
        return JobBundle.model_validate_json(row[0]) if row else None

    async def values(self, job_id: str) -> dict[str, Any] | None:
        """The values rendered at the job's start; None for an unknown job or one stored by a
        version that did not keep them."""
        cursor = await self._db.execute("SELECT rendered FROM bundles WHERE id = ?", (job_id,))
        row = await cursor.fetchone()
        if not row or not row[0]:
            return None
        values: dict[str, Any] = orjson.loads(row[0])
        return values

    async def save_values(self, job_id: str, values: Mapping[str, Any]) -> None:
        """Keep the rendered values of a job stored without them."""
        async with self._writing:
            await self._db.execute(
                "UPDATE bundles SET rendered = ? WHERE id = ?",
                (orjson.dumps(values).decode(), job_id),
            )

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

    async def list_jobs(self, query: JobQuery) -> tuple[list[JobRecord], str | None]:
        """A page of jobs, newest first, and the cursor of the next page."""
        rows, nxt = self._page("data", query)
        return [JobRecord.model_validate_json(r) for r in rows], nxt

    async def list_public(self, query: JobQuery) -> bytes:
        """A page of jobs as the API's `{"items": [...], "next": ...}` JSON, from stored text."""
        rows, nxt = self._page("public", query)
        return ('{"items":[' + ",".join(rows) + '],"next":' + json.dumps(nxt) + "}").encode()

    def _page(self, column: str, query: JobQuery) -> tuple[list[str], str | None]:
        where: list[str] = []
        args: list[object] = []
        source, seq = "jobs", "jobs.seq"
        items = list(query.labels.items())
        if items:  # the first label drives the scan through its index, newest first
            source, seq = "job_labels AS l JOIN jobs ON jobs.seq = l.seq", "l.seq"
            where.append("l.key = ? AND l.value = ?")
            args += list(items[0])
        for key, value in items[1:]:
            where.append("jobs.seq IN (SELECT seq FROM job_labels WHERE key = ? AND value = ?)")
            args += [key, value]
        if query.state is not None:
            where.append("jobs.state = ?")
            args.append(str(query.state))
        if query.pipeline is not None:
            where.append("jobs.pipeline = ?")
            args.append(query.pipeline)
        if query.cursor is not None:
            after = decode_cursor(query.cursor)
            if after >= 2**63:  # past any sequence number (a SQLite INTEGER): not one of ours
                raise BadCursor(query.cursor)
            where.append(f"{seq} < ?")
            args.append(after)
        sql = f"SELECT jobs.seq, jobs.{column} FROM {source}"  # noqa: S608 (constants only)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {seq} DESC LIMIT ?"
        args.append(query.limit + 1)
        rows = self._reader.execute(sql, args).fetchall()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        return [str(r[1]) for r in rows], encode_cursor(int(rows[-1][0])) if more else None

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


def _public(job: JobRecord) -> str:
    return job.public().model_dump_json()


async def _migrate(db: aiosqlite.Connection) -> None:
    """Bring a state.db of an earlier version up to this schema (adds the public JSON and the
    label index, filled from the stored records; adds the rendered values, left empty: the job
    service renders an old job's values once, when first asked)."""
    rows = await db.execute_fetchall("PRAGMA table_info(bundles)")
    if rows and "rendered" not in {str(r[1]) for r in rows}:
        await db.execute("ALTER TABLE bundles ADD COLUMN rendered TEXT NOT NULL DEFAULT ''")
    rows = await db.execute_fetchall("PRAGMA table_info(jobs)")
    columns = {str(r[1]) for r in rows}
    if not columns or "public" in columns:
        return
    await db.execute("ALTER TABLE jobs ADD COLUMN public TEXT NOT NULL DEFAULT ''")
    await db.executescript(_SCHEMA)
    for seq, data in await db.execute_fetchall("SELECT seq, data FROM jobs"):
        job = JobRecord.model_validate_json(data)
        await db.execute("UPDATE jobs SET public = ? WHERE seq = ?", (_public(job), seq))
        await db.executemany(
            "INSERT OR IGNORE INTO job_labels (key, value, seq) VALUES (?, ?, ?)",
            [(k, v, seq) for k, v in job.labels.items()],
        )


def _labels(job: JobRecord) -> str:
    return json.dumps(job.labels, sort_keys=True)
