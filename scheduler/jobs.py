"""The job service: starting, querying, cancelling and completing jobs.

Does I/O through the store and the backend. It is the only writer of job state: every change
goes through `transition`, which applies the state machine (`scheduler.states`), records the
event and logs it, under a per-job lock. Pre-processing runs once per job, at start: the store
keeps the rendered values beside the bundle, for the install task and for `/values`.

How a job's scoring ends is decided in one place, `complete` (and `fail` for a failure): the
completion callback, the install task that finds every flow already reported, and the wait task
that saw every batch-flow process exit 0 all ask it. It answers `ENDED` to the one caller that
ended scoring, `ALREADY_ENDED` (and logs it) to every later one, `NOT_YET` while batch flows
still run; no answer is dropped silently.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import os
import secrets
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import structlog

import ir
from common.task_errors import Part
from ir.bundle import JobBundle, render_bundle
from scheduler.backends.base import Backend
from scheduler.errors import IdempotencyConflict, JobFinished, JobNotFound
from scheduler.flowstatus import failure_item, services_of, settle, with_endpoints, with_report
from scheduler.limits import JobLimits, render_within
from scheduler.schemas import (
    BackendInfo,
    EventPublic,
    FlowReport,
    FlowStatus,
    JobCreate,
    JobQuery,
    JobRecord,
)
from scheduler.states import Event, InvalidTransition, State, advance
from scheduler.store import DuplicateKey, Store

log = structlog.get_logger("scheduler.jobs")

Listener = Callable[[JobRecord, Event], None]
Endpoints = tuple[Mapping[str, str], Mapping[str, str]]  # (services, flows) -> URL


def now() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    """`j-` and 10 random base-32 characters: a DNS-1123 label, usable as a release name."""
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    return "j-" + "".join(secrets.choice(alphabet) for _ in range(10))


def body_hash(request: JobCreate) -> str:
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def make_bundle(
    request: JobCreate,
    *,
    job_id: str,
    globals_: ir.GlobalValues,
    channels: dict[str, str],
    base_dir: Path,
) -> JobBundle:
    """The pre-processing inputs of a start (or validate) request."""
    return JobBundle(
        job_id=job_id,
        name=request.name,
        labels=request.labels,
        pipeline=request.pipeline,
        parameters=request.parameters,
        base_dir=request.base_dir or str(base_dir),
        channels=channels,
        globals=globals_.model_dump(by_alias=True, exclude_none=True, mode="json"),
    )


class Prepared(NamedTuple):
    """A start request, pre-processed: its bundle, the new PENDING job, the rendered values."""

    bundle: JobBundle
    job: JobRecord
    values: dict[str, Any]


async def prepare_job(
    request: JobCreate,
    *,
    job_id: str,
    globals_: ir.GlobalValues,
    channels: dict[str, str],
    base_dir: Path,
    backend: Callable[[str], BackendInfo],
    limits: JobLimits | None = None,
) -> Prepared:
    """The bundle, the new PENDING job and the values of a start request (both backends);
    pre-processing runs in a thread and raises `ir.IRValidationError` listing every problem (of
    the IR, or every limit the job passes)."""
    bundle = make_bundle(
        request, job_id=job_id, globals_=globals_, channels=channels, base_dir=base_dir
    )
    rendered = await asyncio.to_thread(render_within, bundle, limits)
    bundle = bundle.model_copy(update={"content_hash": rendered.content_hash})
    flows = {
        f["name"]: FlowStatus(mode=f["mode"], shards=f["shards"] if f["mode"] == "batch" else 1)
        for f in rendered.values["scoringFlows"]
    }
    job = JobRecord(
        id=job_id,
        name=request.name,
        pipeline=rendered.pipeline,
        state=State.PENDING,
        labels=request.labels,
        flows=flows,
        services=services_of(rendered.values),
        created_at=now(),
        content_hash=rendered.content_hash,
        backend=backend(job_id),
    )
    return Prepared(bundle, job, rendered.values)


class Completion(enum.StrEnum):
    """What `JobService.complete` (or `fail`) decided for its caller."""

    ENDED = "ended"  # this call ended the job's scoring: the job is STOPPING
    ALREADY_ENDED = "already-ended"  # scoring had ended before (completed, failed or cancelled)
    NOT_YET = "not-yet"  # batch flows still run (or the job is still installing)


class JobService:
    """Jobs on top of a store and a backend."""

    def __init__(
        self,
        *,
        store: Store,
        globals_: ir.GlobalValues,
        channels: dict[str, str],
        base_dir: Path | None = None,
        limits: JobLimits | None = None,
    ) -> None:
        self.store = store
        self.globals = globals_
        self.channels = channels
        self.base_dir = base_dir or Path(os.getcwd())
        self.limits = limits
        self.backend: Backend | None = None
        self.listeners: list[Listener] = []
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def _backend(self) -> Backend:
        assert self.backend is not None, "JobService.backend is set by create_app"
        return self.backend

    # -- start ---------------------------------------------------------------------------------

    async def start(
        self, request: JobCreate, *, idempotency_key: str | None = None
    ) -> tuple[JobRecord, bool]:
        """Pre-process and start a job; (job, created). Raises ir.IRValidationError (422)."""
        digest = body_hash(request)
        if idempotency_key is not None:
            seen = await self.store.idempotency(idempotency_key)
            if seen is not None:
                return await self._replay(idempotency_key, digest, seen)
        bundle, job, values = await prepare_job(
            request,
            job_id=new_job_id(),
            globals_=self.globals,
            channels=self.channels,
            base_dir=self.base_dir,
            backend=self._backend().info,
            limits=self.limits,
        )
        job_id = job.id
        event = EventPublic(at=job.created_at, state=State.PENDING, reason="Created")
        key = (idempotency_key, digest) if idempotency_key is not None else None
        try:
            await self.store.create(job, bundle, event, values=values, idempotency=key)
        except DuplicateKey:
            seen = await self.store.idempotency(idempotency_key or "")
            if seen is None:
                raise
            return await self._replay(idempotency_key or "", digest, seen)
        log.info("job created", job_id=job_id, pipeline=job.pipeline, content_hash=job.content_hash)
        await self._backend().start(job)
        return job, True

    async def _replay(self, key: str, digest: str, seen: tuple[str, str]) -> tuple[JobRecord, bool]:
        if seen[0] != digest:
            raise IdempotencyConflict(key)
        return await self.get(seen[1]), False

    # -- queries -------------------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRecord:
        job = await self.store.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def bundle(self, job_id: str) -> JobBundle:
        bundle = await self.store.bundle(job_id)
        if bundle is None:
            raise JobNotFound(job_id)
        return bundle

    async def rendered(self, job_id: str) -> dict[str, Any]:
        """The job's values file as pre-processed at start (what install installs); a job stored
        by an older version without it is rendered from its bundle once, and kept."""
        values = await self.store.values(job_id)
        if values is None:
            rendered = await asyncio.to_thread(render_bundle, await self.bundle(job_id))
            values = rendered.values
            await self.store.save_values(job_id, values)
        return values

    async def values(self, job_id: str) -> dict[str, Any]:
        """The job's values file as pre-processed at start, redacted."""
        redacted: dict[str, Any] = redact(await self.rendered(job_id))
        return redacted

    async def events(self, job_id: str) -> list[EventPublic]:
        await self.get(job_id)
        return await self.store.events(job_id)

    async def get_public(self, job_id: str) -> bytes:
        public = await self.store.get_public(job_id)
        if public is None:
            raise JobNotFound(job_id)
        return public

    async def list_public(self, query: JobQuery) -> bytes:
        return await self.store.list_public(query)

    async def count_by_state(self) -> dict[str, int]:
        return await self.store.count_by_state()

    async def ready(self) -> list[str]:
        problems = []
        try:
            await self.store.ping()
        except Exception as exc:
            problems.append(f"store: {exc}")
        if not await self._backend().ready():
            problems.append(f"backend {self._backend().kind}: not ready")
        return problems

    def log_files(self, job_id: str) -> dict[str, Path]:
        return self._backend().log_files(job_id)

    @property
    def kind(self) -> str:
        return self._backend().kind

    # -- changes -------------------------------------------------------------------------------

    async def transition(
        self,
        job_id: str,
        event: Event,
        *,
        reason: str | None = None,
        message: str | None = None,
        endpoints: Endpoints | None = None,
    ) -> JobRecord | None:
        """Apply `event` to the job; None (and a log line) when it does not apply in its state.
        `endpoints` (with INSTALLED): where its services and http-source flows answer."""
        async with self._locks[job_id]:
            job = await self.get(job_id)
            if endpoints is not None:
                job = with_endpoints(job, services=endpoints[0], flows=endpoints[1])
            changed = await self._apply(job, event, reason=reason, message=message)
        if changed is not None:
            self._notify(*changed)
            return changed[0]
        return None

    async def _apply(
        self,
        job: JobRecord,
        event: Event,
        *,
        reason: str | None = None,
        message: str | None = None,
        part: Part | None = None,
        log_tail: str | None = None,
    ) -> tuple[JobRecord, Event, EventPublic | None] | None:
        """The transition itself, under the job's lock: (the job after it, the event, the stored
        event record or None when nothing changed); None when `event` does not apply. A failure
        names its `part` (service or flow) and keeps that part's `log_tail` apart."""
        job_id = job.id
        try:
            step = advance(job.state, event, job.outcome)
        except InvalidTransition as exc:
            log.info(
                "transition ignored",
                job_id=job_id,
                state=job.state,
                on=str(event),
                why=str(exc),
            )
            return None
        if step.state == job.state and step.outcome == job.outcome:
            return job, event, None
        at = now()
        update: dict[str, Any] = {
            "state": step.state,
            "task": step.task,
            "outcome": step.outcome,
        }
        if event in (Event.INSTALL_FAILED, Event.WAIT_FAILED, Event.FINALLY_FAILED):
            update["reason"], update["message"] = reason, message
            where = [f"{part[0]}s", part[1]] if part is not None else None
            update["errors"] = [
                failure_item(
                    task=job.task or "finally", message=message or "", part=where, log_tail=log_tail
                )
            ]
            update["failed_task"] = job.task or "finally"
            update["failed_part"] = where
        elif event == Event.CANCEL:
            update["reason"], update["message"] = reason or "Cancelled", message
        elif reason is not None and job.reason is None:
            update["reason"], update["message"] = reason, message
        if step.state == State.INSTALLING:
            update["started_at"] = at
        if step.state.finished:
            update["finished_at"] = at
            update["task"] = job.failed_task if step.state == State.FAILED else None
            if step.state == State.SUCCEEDED:
                update["reason"] = update.get("reason") or job.reason or "Completed"
        job = settle(job.model_copy(update=update))
        record = EventPublic(
            at=at, state=job.state, task=job.task, reason=reason or job.reason, message=message
        )
        await self.store.save(job, record)
        return job, event, record

    def _notify(self, job: JobRecord, event: Event, record: EventPublic | None) -> None:
        """Log a transition that happened and tell the listeners (outside the job's lock)."""
        if record is None:
            return
        log.info(
            "job transition",
            job_id=job.id,
            on=str(event),
            state=str(job.state),
            task=job.task,
            reason=record.reason,
        )
        for listener in self.listeners:
            listener(job, event)

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel a job (idempotent); JobFinished when it already ended."""
        job = await self.get(job_id)
        if job.state.finished:
            raise JobFinished(job.public())
        updated = await self.transition(
            job_id, Event.CANCEL, reason="Cancelled", message="cancelled by request"
        )
        await self._backend().stop(job_id)
        return updated or await self.get(job_id)

    async def record_report(
        self, job_id: str, flow: str, report: FlowReport, *, final: bool
    ) -> JobRecord:
        """Store a flow's counters (progress, or one shard's completion); decides nothing.
        `JobFinished` (409) when the job has ended: a finished job is what it was."""
        async with self._locks[job_id]:
            job = await self.get(job_id)
            if flow not in job.flows:
                raise JobNotFound(f"{job_id}/flows/{flow}")
            if job.state.finished:
                raise JobFinished(job.public())
            job = settle(with_report(job, flow, report, final=final))
            await self.store.save(job)
        self._backend().observe(job)
        updated = job.flows[flow]
        log.info(
            "flow report",
            job_id=job_id,
            flow=flow,
            final=final,
            records_in=updated.records_in,
            records_out=updated.records_out,
            records_failed=updated.records_failed,
            error=report.error,
        )
        return job

    async def report(self, job_id: str, flow: str, report: FlowReport, *, final: bool) -> JobRecord:
        """A flow's progress or completion (its callback). A completion asks `complete`, a
        completion with an error asks `fail`; when that ends the job, its task is stopped."""
        await self.record_report(job_id, flow, report, final=final)
        if final and report.error:
            decided = await self.fail(
                job_id,
                task="wait",
                reason="FlowFailed",
                message=f"Flow {flow!r} failed: {report.error}",
                by=f"flow {flow}",
                part=("flow", flow),
            )
        elif final:
            decided = await self.complete(job_id, by=f"flow {flow}")
        else:
            decided = Completion.NOT_YET
        if decided == Completion.ENDED:
            await self._backend().stop(job_id)
        return await self.get(job_id)

    async def complete(self, job_id: str, *, by: str, processes_done: bool = False) -> Completion:
        """Whether the job's scoring is over, decided here and nowhere else: when every batch
        flow reported its completion, or (`processes_done`, the wait task's own evidence) every
        batch-flow process exited 0, the job goes RUNNING -> STOPPING to succeed. The first
        caller that finds it so gets `ENDED`; every later one `ALREADY_ENDED`; a job still
        installing or with batch flows running `NOT_YET` (install asks again when it ends)."""
        async with self._locks[job_id]:
            job = await self.get(job_id)
            changed = None
            if job.state in (State.PENDING, State.INSTALLING):
                decided = Completion.NOT_YET
            elif job.state != State.RUNNING:
                decided = Completion.ALREADY_ENDED
            elif not (processes_done or _all_batch_done(job)):
                decided = Completion.NOT_YET
            else:
                changed = await self._apply(job, Event.SCORING_DONE, reason="Completed")
                decided = Completion.ENDED
        if changed is not None:
            self._notify(*changed)
        log.info("job completion", job_id=job_id, by=by, decided=str(decided), state=str(job.state))
        return decided

    async def fail(
        self,
        job_id: str,
        *,
        task: str,
        reason: str,
        message: str,
        by: str,
        part: Part | None = None,
        log_tail: str | None = None,
    ) -> Completion:
        """Fail the job for a failure of its `task` (install or wait): `ENDED` when this ended
        the job; `ALREADY_ENDED` when it had ended before; `NOT_YET` when the job is not in that
        task yet (a flow's failed completion while install still runs: the wait task fails the
        job when it sees that report)."""
        event = Event.INSTALL_FAILED if task == "install" else Event.WAIT_FAILED
        current = State.INSTALLING if task == "install" else State.RUNNING
        async with self._locks[job_id]:
            job = await self.get(job_id)
            changed = None
            if job.state == current:
                changed = await self._apply(
                    job, event, reason=reason, message=message, part=part, log_tail=log_tail
                )
                decided = Completion.ENDED
            elif job.state in (State.PENDING, State.INSTALLING):
                decided = Completion.NOT_YET
            else:
                decided = Completion.ALREADY_ENDED
        if changed is not None:
            self._notify(*changed)
        log.info(
            "job failure",
            job_id=job_id,
            by=by,
            task=task,
            reason=reason,
            decided=str(decided),
            state=str(job.state),
        )
        return decided


def _all_batch_done(job: JobRecord) -> bool:
    batch = [f for f in job.flows.values() if f.mode == "batch"]
    return bool(batch) and all(f.state == "COMPLETED" for f in batch)


_SECRET_KEYS = ("password", "secret", "token", "apikey", "api_key", "credentials")


def redact(node: Any) -> Any:
    """Values with any string under a secret-looking key masked (values never should hold one;
    `secretRef` objects are references and stay)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            lowered = str(key).lower().replace("-", "_")
            if isinstance(value, str) and any(k in lowered for k in _SECRET_KEYS):
                out[key] = "***"
            else:
                out[key] = redact(value)
        return out
    if isinstance(node, list):
        return [redact(v) for v in node]
    return node
