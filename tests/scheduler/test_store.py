"""The SQLite store: atomic create with idempotency keys, cursor pages, filters, and state that
survives reopening."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ir.bundle import JobBundle
from scheduler.schemas import BackendInfo, EventPublic, JobQuery, JobRecord, decode_cursor
from scheduler.states import State
from scheduler.stores.base import DuplicateKey, Write
from scheduler.stores.sqlite import SqliteStore as Store


def job(i: int, *, state: State = State.PENDING, labels: dict[str, str] | None = None) -> JobRecord:
    return JobRecord(
        id=f"j-{i:010d}",
        pipeline="p" if i % 2 else "q",
        state=state,
        labels=labels or {},
        created_at=datetime.now(UTC),
        content_hash="0" * 64,
        backend=BackendInfo(kind="local"),
    )


def bundle(i: int) -> JobBundle:
    return JobBundle(job_id=f"j-{i:010d}", pipeline={}, base_dir="/")


VALUES = {"job": {"id": "j-0000000001"}, "scoringFlows": [{"name": "f", "batchSize": 8}]}


def event() -> EventPublic:
    return EventPublic(at=datetime.now(UTC), state=State.PENDING)


async def test_jobs_survive_reopening_with_their_events(tmp_path: Path):
    store = await Store.open(tmp_path / "state.db")
    await store.create(job(1), bundle(1), event(), values=VALUES)
    stored = await store.get("j-0000000001")
    assert stored is not None
    saved = stored.model_copy(update={"state": State.RUNNING})
    await store.save(saved, EventPublic(at=datetime.now(UTC), state=State.RUNNING))
    await store.close()
    store = await Store.open(tmp_path / "state.db")
    reopened = await store.get("j-0000000001")
    assert reopened is not None and reopened.state == State.RUNNING
    assert [e.state for e in await store.events("j-0000000001")] == [State.PENDING, State.RUNNING]
    assert [j.id for j in await store.unfinished()] == ["j-0000000001"]
    assert await store.values("j-0000000001") == VALUES  # rendered once, at start, kept
    assert await store.values("j-0000000009") is None
    await store.close()


async def test_an_idempotency_key_is_taken_once_and_nothing_half_written(tmp_path: Path):
    store = await Store.open(tmp_path / "state.db")
    await store.create(job(1), bundle(1), event(), values=VALUES, idempotency=("k", "h1"))
    with pytest.raises(DuplicateKey):
        await store.create(job(2), bundle(2), event(), values=VALUES, idempotency=("k", "h2"))
    assert await store.get("j-0000000002") is None
    assert await store.bundle("j-0000000002") is None
    assert await store.idempotency("k") == ("h1", "j-0000000001")
    await store.close()


async def test_pages_are_newest_first_and_filters_combine(tmp_path: Path):
    store = await Store.open(tmp_path / "state.db")
    for i in range(7):
        await store.create(
            job(i, labels={"team": "a" if i < 3 else "b"}), bundle(i), event(), values=VALUES
        )
    seen, cursor = [], None
    while True:
        page, cursor = await store.list_jobs(JobQuery(limit=3, cursor=cursor))
        seen += [j.id for j in page]
        if cursor is None:
            break
    assert seen == [f"j-{i:010d}" for i in reversed(range(7))]
    page, _ = await store.list_jobs(JobQuery(pipeline="p", labels={"team": "b"}))
    assert [j.id for j in page] == ["j-0000000005", "j-0000000003"]
    assert await store.count_by_state() == {"PENDING": 7}
    await store.close()


@pytest.mark.parametrize("cursor", ["", "!!", "LTE", "YWJj"])
def test_a_foreign_cursor_is_refused(cursor):
    with pytest.raises(ValueError, match="not a valid cursor"):
        decode_cursor(cursor)


async def test_a_state_db_of_the_first_schema_is_migrated_and_nothing_is_lost(tmp_path: Path):
    import sqlite3

    old = sqlite3.connect(tmp_path / "state.db")
    old.executescript(
        "CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
        " state TEXT NOT NULL, pipeline TEXT NOT NULL, labels TEXT NOT NULL, data TEXT NOT NULL);"
        "CREATE TABLE bundles (id TEXT PRIMARY KEY, data TEXT NOT NULL);"
    )
    record = job(3, labels={"team": "a"})
    old.execute(
        "INSERT INTO jobs (id, state, pipeline, labels, data) VALUES (?, ?, ?, ?, ?)",
        (record.id, record.state, record.pipeline, '{"team": "a"}', record.model_dump_json()),
    )
    old.execute(
        "INSERT INTO bundles (id, data) VALUES (?, ?)", (record.id, bundle(3).model_dump_json())
    )
    old.commit()
    old.close()
    store = await Store.open(tmp_path / "state.db")
    assert (await store.get(record.id)) == record
    page = await store.list_public(JobQuery(labels={"team": "a"}))
    assert [item["id"] for item in json.loads(page)["items"]] == [record.id]
    public = await store.get_public(record.id)
    assert public is not None and json.loads(public)["state"] == "PENDING"
    assert await store.bundle(record.id) == bundle(3)
    assert await store.values(record.id) is None  # not kept then: the job service renders it
    await store.save_values(record.id, VALUES)
    assert await store.values(record.id) == VALUES
    assert await store.count_by_state() == {"PENDING": 1}  # counted once, at the migration
    await store.close()


async def test_counts_by_state_follow_every_change_and_survive_reopening(tmp_path: Path):
    store = await Store.open(tmp_path / "state.db")
    for i in range(4):
        await store.create(job(i), bundle(i), event(), values=VALUES)
    running = job(1, state=State.RUNNING)
    await store.save(running)
    await store.save(running)  # no transition: counted once
    await store.save(job(2, state=State.SUCCEEDED))
    await store.update(
        "j-0000000003", lambda j: Write(j.model_copy(update={"state": State.FAILED}))
    )
    assert await store.count_by_state() == {"PENDING": 1, "RUNNING": 1, "SUCCEEDED": 1, "FAILED": 1}
    await store.close()
    store = await Store.open(tmp_path / "state.db")
    assert await store.count_by_state() == {"PENDING": 1, "RUNNING": 1, "SUCCEEDED": 1, "FAILED": 1}
    await store.close()


async def test_a_state_db_without_counts_is_counted_once_when_opened(tmp_path: Path):
    import sqlite3

    store = await Store.open(tmp_path / "state.db")
    for i in range(3):
        await store.create(
            job(i, state=State.SUCCEEDED if i else State.PENDING), bundle(i), event(), values=VALUES
        )
    await store.close()
    old = sqlite3.connect(tmp_path / "state.db")
    old.executescript(
        "DROP TRIGGER job_counts_insert; DROP TRIGGER job_counts_update;"
        " DROP TRIGGER job_counts_delete; DROP TABLE job_counts;"
    )
    old.close()
    store = await Store.open(tmp_path / "state.db")
    assert await store.count_by_state() == {"PENDING": 1, "SUCCEEDED": 2}
    await store.close()


async def test_every_filter_combination_answers_right_whichever_filter_is_rarest(tmp_path: Path):
    store = await Store.open(tmp_path / "state.db")
    records = []
    for i in range(60):
        labels = {"all": "yes", "team": f"t{i % 3}", "run": f"r{i}"}
        state = State.RUNNING if i in (7, 8, 40) else State.SUCCEEDED
        records.append(job(i, state=state, labels=labels))
        await store.create(records[-1], bundle(i), event(), values=VALUES)
    queries = [
        JobQuery(labels={"all": "yes", "run": "r7"}),
        JobQuery(labels={"run": "r7", "all": "yes"}),
        JobQuery(labels={"all": "yes", "team": "t1"}, state=State.RUNNING),
        JobQuery(labels={"team": "t1"}, state=State.SUCCEEDED, pipeline="p"),
        JobQuery(labels={"all": "yes"}, pipeline="q", limit=4),
        JobQuery(state=State.RUNNING, pipeline="q"),
        JobQuery(labels={"all": "yes", "team": "t2"}, limit=5),
    ]
    for query in queries:
        expected = [
            r.id
            for r in reversed(records)
            if all(r.labels.get(k) == v for k, v in query.labels.items())
            and query.state in (None, r.state)
            and query.pipeline in (None, r.pipeline)
        ]
        seen, cursor = [], None
        while True:
            page, cursor = await store.list_jobs(dataclasses.replace(query, cursor=cursor))
            seen += [j.id for j in page]
            if cursor is None:
                break
        assert seen == expected, query
    await store.close()


async def test_reads_use_indexes_not_a_walk_through_every_job(tmp_path: Path):
    """At 1,000,000 jobs a scan of the jobs costs seconds: every read the server makes on a
    request or at start-up is an index search (EXPLAIN QUERY PLAN of the statements it ran);
    only the unfiltered page reads the jobs table itself, newest first, and stops at its limit."""
    import sqlite3

    store = await Store.open(tmp_path / "state.db")
    for i in range(30):
        await store.create(
            job(i, labels={"all": "yes", "run": f"r{i}"}), bundle(i), event(), values=VALUES
        )
    statements: list[str] = []
    store._reader.set_trace_callback(statements.append)
    await store._db.set_trace_callback(statements.append)
    await store.get_public("j-0000000003")
    await store.get("j-0000000003")
    for query in (
        JobQuery(limit=5),
        JobQuery(limit=5, cursor="MTA"),
        JobQuery(labels={"all": "yes"}),
        JobQuery(labels={"all": "yes", "run": "r7"}),
        JobQuery(labels={"all": "yes"}, state=State.RUNNING),
        JobQuery(state=State.PENDING, pipeline="p"),
    ):
        await store.list_public(query)
    await store.count_by_state()
    await store.unfinished()
    await store.close()
    raw = sqlite3.connect(tmp_path / "state.db")
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) >= 10
    for sql in selects:
        plan = [str(r[3]) for r in raw.execute("EXPLAIN QUERY PLAN " + sql)]
        unfiltered_page = " WHERE " not in sql and "LIMIT" in sql
        for step in plan:
            assert "LIST SUBQUERY" not in step, (sql, plan)
            if "LIMIT" in sql:  # a page follows an index in order and stops at its limit
                assert "TEMP B-TREE" not in step, (sql, plan)
            # a bounded subquery and job_counts (a row per state) are no walk through the jobs
            table_scan = step.startswith("SCAN") and not ("subquery" in step or "counts" in step)
            if table_scan and not unfiltered_page:
                raise AssertionError(f"a scan: {sql} -> {plan}")
    raw.close()
