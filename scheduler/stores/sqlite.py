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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from ir.bundle import JobBundle
from scheduler.errors import BadCursor, JobNotFound
from scheduler.rules import new_job_id
from scheduler.schemas import EventPublic, JobQuery, JobRecord, decode_cursor, encode_cursor
from scheduler.states import FINISHED, State
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
CREATE TABLE IF NOT EXISTS job_counts (
    state TEXT PRIMARY KEY,
    n INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS job_counts_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS job_counts_update AFTER UPDATE OF state ON jobs
    WHEN OLD.state IS NOT NEW.state BEGIN
    UPDATE job_counts SET n = n - 1 WHERE state = OLD.state;
    INSERT INTO job_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS job_counts_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1 WHERE state = OLD.state;
END;
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


_DRIVER_COUNT = 1_000


@dataclass(frozen=True)
class _Filter:
    """One filter of a list query: the SQL that drives a page by its index (`source`, `seq`,
    `drive`), checks it on a job found otherwise (`check`), counts its jobs (`count`)."""

    source: str
    seq: str
    drive: str
    check: str
    count: str
    args: tuple[str, ...]

    @classmethod
    def label(cls, key: str, value: str) -> _Filter:
        return cls(
            source="job_labels AS l JOIN jobs ON jobs.seq = l.seq",
            seq="l.seq",
            drive="l.key = ? AND l.value = ?",
            check="EXISTS (SELECT 1 FROM job_labels AS o"
            " WHERE o.key = ? AND o.value = ? AND o.seq = jobs.seq)",
            count="job_labels WHERE key = ? AND value = ?",
            args=(key, value),
        )

    @classmethod
    def column(cls, name: str, value: str) -> _Filter:  # state or pipeline: indexed (x, seq)
        return cls(
            source="jobs",
            seq="jobs.seq",
            drive=f"jobs.{name} = ?",
            check=f"+jobs.{name} = ?",
            count=f"jobs WHERE {name} = ?",
            args=(value,),
        )


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
            counted = await _has_table(db, "job_counts")
            await _migrate(db)
            await db.executescript(_SCHEMA)
            if not counted:  # a state.db of an earlier version: count its jobs once
                await db.execute(
                    "INSERT OR REPLACE INTO job_counts (state, n)"
                    " SELECT state, COUNT(*) FROM jobs GROUP BY state"
                )
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
        """A page newest first. Each filter (a label, the state, the pipeline) has an index in
        `seq` order; the one with the fewest jobs (counted up to `_DRIVER_COUNT`) drives the scan
        newest first, the others are checked on the jobs it yields (`+` keeps SQLite from
        driving by them instead), so a rare filter is never found by walking a common one."""
        filters = [_Filter.label(k, v) for k, v in query.labels.items()]
        if query.state is not None:
            filters.append(_Filter.column("state", str(query.state)))
        if query.pipeline is not None:
            filters.append(_Filter.column("pipeline", query.pipeline))
        if len(filters) > 1:
            filters.sort(key=self._matches)
        source, seq = "jobs", "jobs.seq"
        where: list[str] = []
        args: list[object] = []
        if filters:
            source, seq = filters[0].source, filters[0].seq
            where.append(filters[0].drive)
            args += filters[0].args
        for other in filters[1:]:
            where.append(other.check)
            args += other.args
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

    def _matches(self, where: _Filter) -> int:
        """How many jobs pass one filter, counted through its index up to `_DRIVER_COUNT`."""
        sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM {where.count} LIMIT ?)"  # noqa: S608
        return int(self._reader.execute(sql, [*where.args, _DRIVER_COUNT]).fetchone()[0])

    async def unfinished(self) -> list[JobRecord]:
        """Every job not yet SUCCEEDED, FAILED or CANCELLED, oldest first."""
        states = [str(s) for s in State if s not in FINISHED]  # through the state index
        marks = ",".join("?" for _ in states)
        cursor = await self._db.execute(
            f"SELECT data FROM jobs WHERE state IN ({marks}) ORDER BY seq",  # noqa: S608
            states,
        )
        return [JobRecord.model_validate_json(r[0]) for r in await cursor.fetchall()]

    async def count_by_state(self) -> dict[str, int]:
        """From `job_counts`, which triggers keep (no scan of the jobs)."""
        rows = self._reader.execute("SELECT state, n FROM job_counts WHERE n > 0").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}


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


async def _has_table(db: aiosqlite.Connection, name: str) -> bool:
    rows = await db.execute_fetchall(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    )
    return bool(list(rows))


def _labels(job: JobRecord) -> str:
    return json.dumps(job.labels, sort_keys=True)
