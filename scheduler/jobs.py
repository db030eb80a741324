"""The job service: every rule of a job's life, written once, for both backends.

Does I/O through its store (a `JobStore`: SQLite, or the PipelineRuns) and its runner (a
`Runner`: local processes, or Tekton); it does not know which it holds. The routes, the CLI's
server and both runners call it. Its rules are the pure functions of `scheduler.rules`, each
applied through the store's `update` (read, decide, write, with no other writer in between):

- **start**: pre-processing runs once, here; the store keeps the bundle and the values rendered
  from it (what install installs and `/values` serves); an Idempotency-Key replays its start;
- **reports**: a flow's counters add up per shard (its error kept up to `rules.ERROR_LIMIT`);
- **how scoring ends** is decided in one place, `complete` (and `fail` for a failure): the
  completion callback, the install task that finds every flow already reported and the wait
  task that saw every batch-flow process exit 0 all ask it. It answers `ENDED` to the one caller
  that ended scoring, `ALREADY_ENDED` (and logs it) to every later one, `NOT_YET` while batch
  flows still run; no answer is dropped silently. When a callback ended it, the runner is told
  to stop the job's task;
- **cancel**: idempotent; a finished job is `JobFinished`;
- every transition goes through `scheduler.states` (`transition`), is recorded with its event
  and logged, and told to the listeners (the metrics).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import structlog

import ir
from common.task_errors import Part
from ir import Rendered
from ir.bundle import JobBundle, render_bundle
from scheduler import rules
from scheduler.errors import IdempotencyConflict, JobFinished, JobNotFound
from scheduler.flowstatus import services_of, settle, with_endpoints, with_report
from scheduler.limits import JobLimits, render_within
from scheduler.rules import Completion
from scheduler.runners.base import RunnerFactory
from scheduler.schemas import (
    BackendInfo,
    EventPublic,
    FlowReport,
    FlowStatus,
    JobCreate,
    JobQuery,
    JobRecord,
)
from scheduler.states import Event, InvalidTransition, State
from scheduler.stores.base import DuplicateKey, JobStore, Write

log = structlog.get_logger("scheduler.jobs")

Listener = Callable[[JobRecord, Event], None]
Endpoints = tuple[Mapping[str, str], Mapping[str, str]]  # (services, flows) -> URL
Render = Callable[[JobBundle, JobLimits | None], Awaitable[Rendered]]
"""Pre-processing of a bundle within the limits (`render_within`), run off the event loop."""


def now() -> datetime:
    return datetime.now(UTC)


class Prepared(NamedTuple):
    """A start request, pre-processed: its bundle, the new PENDING job, the rendered values."""

    bundle: JobBundle
    job: JobRecord
    values: dict[str, Any]


async def in_thread(bundle: JobBundle, limits: JobLimits | None) -> Rendered:
    """`render_within` in a thread of this process (without `scheduler.workers`' pool)."""
    return await asyncio.to_thread(render_within, bundle, limits)


async def prepare_job(
    request: JobCreate,
    *,
    job_id: str,
    globals_: ir.GlobalValues,
    channels: dict[str, str],
    base_dir: Path,
    backend: Callable[[str], BackendInfo],
    limits: JobLimits | None = None,
    render: Render = in_thread,
) -> Prepared:
    """The bundle, the new PENDING job and the values of a start request; pre-processing runs
    through `render` (a worker process, or a thread) and raises `ir.IRValidationError` listing
    every problem (of the IR, or every limit the job passes)."""
    bundle = rules.make_bundle(
        request, job_id=job_id, globals_=globals_, channels=channels, base_dir=base_dir
    )
    rendered = await render(bundle, limits)
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


class JobService:
    """Jobs on top of a store and a runner; the runner is built from `runner` here."""

    def __init__(
        self,
        *,
        store: JobStore,
        runner: RunnerFactory,
        globals_: ir.GlobalValues,
        channels: dict[str, str],
        base_dir: Path | None = None,
        limits: JobLimits | None = None,
        render: Render = in_thread,
    ) -> None:
        self.store = store
        self.render = render
        self.globals = globals_
        self.channels = channels
        self.base_dir = base_dir or Path(os.getcwd())
        self.limits = limits
        self.listeners: list[Listener] = []
        self.runner = runner(self)

    @property
    def kind(self) -> str:
        return self.runner.kind

    async def recover(self) -> int:
        """At start-up: the runner picks up the unfinished jobs of a previous run; how many."""
        unfinished = await self.store.unfinished()
        await self.runner.recover(unfinished)
        return len(unfinished)

    async def close(self) -> None:
        await self.runner.close()

    # -- start ---------------------------------------------------------------------------------

    async def start(
        self, request: JobCreate, *, idempotency_key: str | None = None
    ) -> tuple[JobRecord, bool]:
        """Pre-process and start a job; (job, created). Raises ir.IRValidationError (422)."""
        digest = rules.body_hash(request)
        if idempotency_key is not None:
            seen = await self.store.idempotency(idempotency_key)
            if seen is not None:
                return await self._replay(idempotency_key, digest, seen)
        bundle, job, values = await prepare_job(
            request,
            job_id=self.store.new_id(idempotency_key),
            globals_=self.globals,
            channels=self.channels,
            base_dir=self.base_dir,
            backend=self.runner.info,
            limits=self.limits,
            render=self.render,
        )
        event = EventPublic(at=job.created_at, state=State.PENDING, reason="Created")
        key = (idempotency_key, digest) if idempotency_key is not None else None
        try:
            job = await self.store.create(job, bundle, event, values=values, idempotency=key)
        except DuplicateKey:
            seen = await self.store.idempotency(idempotency_key or "")
            if seen is None:
                raise
            return await self._replay(idempotency_key or "", digest, seen)
        log.info("job created", job_id=job.id, pipeline=job.pipeline, content_hash=job.content_hash)
        await self.runner.start(job, values)
        return job, True

    async def _replay(self, key: str, digest: str, seen: tuple[str, str]) -> tuple[JobRecord, bool]:
        if seen[0] != digest:
            raise IdempotencyConflict(key)
        return await self.get(seen[1]), False

    async def validate(self, request: JobCreate) -> dict[str, Any]:
        """Pre-process as a start would, within the same limits, starting nothing: the values,
        redacted (as `values`); `ir.IRValidationError` listing every problem."""
        bundle = rules.make_bundle(
            request,
            job_id="validate",
            globals_=self.globals,
            channels=self.channels,
            base_dir=self.base_dir,
        )
        rendered = await self.render(bundle, self.limits)
        redacted: dict[str, Any] = rules.redact(rendered.values)
        return redacted

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
        """The job's values file as pre-processed at start (what install installs); a job
        stored without it (by an older version) is rendered from its bundle once, and kept where
        the store can."""
        values = await self.store.values(job_id)
        if values is None:
            rendered = await asyncio.to_thread(render_bundle, await self.bundle(job_id))
            values = rendered.values
            await self.store.save_values(job_id, values)
        return values

    async def values(self, job_id: str) -> dict[str, Any]:
        """The job's values file as pre-processed at start, redacted."""
        redacted: dict[str, Any] = rules.redact(await self.rendered(job_id))
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
        """What keeps the server from serving (empty when ready)."""
        return [*await self.store.problems(), *await self.runner.problems()]

    def log_files(self, job_id: str) -> dict[str, Path]:
        return self.runner.log_files(job_id)

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
        """Apply `event` to the job (what a runner's task saw); the job after it, or None (and
        a log line) when it does not apply in the job's state. `endpoints` (with INSTALLED):
        where its services and http-source flows answer."""
        at = now()

        def change(job: JobRecord) -> Write | None:
            if endpoints is not None:
                job = with_endpoints(job, services=endpoints[0], flows=endpoints[1])
            return rules.apply_event(job, event, reason=reason, message=message, at=at)

        try:
            before, after = await self.store.update(job_id, change)
        except InvalidTransition as exc:
            log.info(
                "transition ignored", job_id=job_id, state=exc.state, on=str(event), why=str(exc)
            )
            return None
        if after is None:
            return before
        self._notify(after, event)
        return after

    def _notify(self, job: JobRecord, event: Event) -> None:
        """Log a transition that happened and tell the listeners."""
        log.info(
            "job transition",
            job_id=job.id,
            on=str(event),
            state=str(job.state),
            task=job.task,
            reason=job.reason,
        )
        for listener in self.listeners:
            listener(job, event)

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel a job (idempotent: a job already stopping stays as it is); `JobFinished` when
        it already ended."""
        job = await self.get(job_id)
        if job.state.finished:
            raise JobFinished(job.public())
        at = now()
        try:
            before, after = await self.store.update(
                job_id,
                lambda job: rules.apply_event(
                    job, Event.CANCEL, reason="Cancelled", message="cancelled by request", at=at
                ),
            )
        except InvalidTransition:  # it ended meanwhile
            raise JobFinished((await self.get(job_id)).public()) from None
        if after is None:
            return before
        self._notify(after, Event.CANCEL)
        await self.runner.stop(after)
        return after

    async def record_report(
        self, job_id: str, flow: str, report: FlowReport, *, final: bool
    ) -> JobRecord:
        """Store a flow's counters (progress, or one shard's completion); decides nothing.
        `JobFinished` (409) when the job has ended: a finished job is what it was."""
        report = rules.clipped(report)

        def add(job: JobRecord) -> Write:
            if flow not in job.flows:
                raise JobNotFound(f"{job_id}/flows/{flow}")
            if job.state.finished:
                raise JobFinished(job.public())
            return Write(settle(with_report(job, flow, report, final=final)))

        before, after = await self.store.update(job_id, add)
        job = after or before
        self.runner.observe(job)
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
        report = rules.clipped(report)
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
        job = await self.get(job_id)
        if decided == Completion.ENDED:
            await self.runner.stop(job)
        return job

    async def complete(self, job_id: str, *, by: str, processes_done: bool = False) -> Completion:
        """Whether the job's scoring is over, decided here and nowhere else
        (`rules.completion`): the first caller that finds it so ends scoring (the job goes
        STOPPING to succeed) and gets `ENDED`; every later one `ALREADY_ENDED`; a job still
        installing (on a runner whose install asks again) or with batch flows running
        `NOT_YET`."""
        at = now()
        decided = Completion.NOT_YET

        def decide(job: JobRecord) -> Write | None:
            nonlocal decided
            decided = rules.completion(
                job,
                processes_done=processes_done,
                during_install=self.runner.ends_during_install,
            )
            if decided != Completion.ENDED:
                return None
            return rules.apply_event(job, Event.SCORING_DONE, reason="Completed", at=at)

        before, after = await self.store.update(job_id, decide)
        if after is not None:
            self._notify(after, Event.SCORING_DONE)
        log.info(
            "job completion", job_id=job_id, by=by, decided=str(decided), state=str(before.state)
        )
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
        """Fail the job for a failure of its `task` (install, or wait) (`rules.failure`):
        `ENDED` when this ended the job; `ALREADY_ENDED` when it had ended before; `NOT_YET`
        when the job is not in that task yet (a flow's failed completion while install still
        runs: the wait task fails the job when it sees that report)."""
        at = now()
        decided = Completion.NOT_YET
        event: Event | None = None

        def decide(job: JobRecord) -> Write | None:
            nonlocal decided, event
            decided, event = rules.failure(
                job, task=task, during_install=self.runner.ends_during_install
            )
            if event is None:
                return None
            return rules.apply_event(
                job, event, reason=reason, message=message, at=at, part=part, log_tail=log_tail
            )

        before, after = await self.store.update(job_id, decide)
        if after is not None and event is not None:
            self._notify(after, event)
        log.info(
            "job failure",
            job_id=job_id,
            by=by,
            task=task,
            reason=reason,
            decided=str(decided),
            state=str(before.state),
        )
        return decided
