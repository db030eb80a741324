"""The embedded local backend: a job's install -> wait -> finally pipeline as asyncio tasks in
this process, its scoring services and flows as supervised child processes.

Does I/O (processes and files under `$TEKSCORE_HOME/jobs/<id>/`, through
`local_runner.LocalInstaller`). The install task takes the values rendered when the job started
from the job service, in this process (no second pre-processing, no HTTP call to itself); the
wait task ends by asking the job service whether the job is complete (`JobService.complete`,
the one place that decides), after adding the counters of flows whose completion callback never
came from their termination records. A scheduler restart re-attaches to the live processes of
running jobs, or fails the job with reason `scheduler-restarted` and cleans up: no job is ever
forgotten.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import structlog

from common.task_errors import TaskFailed
from local_runner.installer import FlowReport, LocalInstaller
from scheduler.auth import callback_token
from scheduler.jobs import Completion, JobService
from scheduler.schemas import BackendInfo, JobRecord
from scheduler.schemas import FlowReport as FlowCounters
from scheduler.states import Event, State

log = structlog.get_logger("scheduler.local")

RESTARTED = "scheduler-restarted"


class LocalBackend:
    """Runs jobs on this machine."""

    kind = "local"

    def __init__(
        self,
        *,
        service: JobService,
        home: Path,
        base_url: str,
        secret: bytes,
        grace_period: float = 10.0,
        ready_timeout: float = 120.0,
    ) -> None:
        self.service = service
        self.jobs_dir = home / "jobs"
        self.base_url = base_url
        self.secret = secret
        self.grace_period = grace_period
        self.ready_timeout = ready_timeout
        self._runners: dict[str, asyncio.Task[None]] = {}
        self._phases: dict[str, asyncio.Task[None]] = {}
        self._reports: dict[str, dict[str, FlowReport]] = {}

    def info(self, job_id: str) -> BackendInfo:
        return BackendInfo(kind="local", release=job_id)

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def _installer(self, job_id: str) -> LocalInstaller:
        return LocalInstaller(
            job_id=job_id,
            job_dir=self.job_dir(job_id),
            callback_url=self.base_url,
            callback_token=callback_token(self.secret, job_id),
            ready_timeout=self.ready_timeout,
            grace_period=self.grace_period,
        )

    async def start(self, job: JobRecord) -> None:
        self._spawn(job.id, self._run(job.id, self._installer(job.id), resume_wait=False))

    def _spawn(self, job_id: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._runners[job_id] = task
        task.add_done_callback(lambda _: self._runners.pop(job_id, None))

    async def stop(self, job_id: str) -> None:
        phase = self._phases.get(job_id)
        if phase is not None and not phase.done():
            phase.cancel()

    async def _run(self, job_id: str, installer: LocalInstaller, *, resume_wait: bool) -> None:
        """The job's pipeline: install and wait in a cancellable phase, then finally, always."""
        bound = log.bind(job_id=job_id)
        phase = asyncio.create_task(self._install_and_wait(job_id, installer, resume_wait))
        self._phases[job_id] = phase
        try:
            await asyncio.wait([phase])
        finally:
            self._phases.pop(job_id, None)
        job = await self.service.get(job_id)
        if job.state in (State.INSTALLING, State.RUNNING):  # the phase ended without a verdict
            await self._fail(job_id, "InternalError", "the task ended without an outcome")
        try:
            await installer.uninstall()
        except Exception as exc:  # a finally task that fails fails the job
            bound.exception("uninstall failed")
            await self.service.transition(
                job_id, Event.FINALLY_FAILED, reason="UninstallFailed", message=str(exc)
            )
            return
        await self.service.transition(job_id, Event.FINALLY_DONE)

    async def _install_and_wait(
        self, job_id: str, installer: LocalInstaller, resume_wait: bool
    ) -> None:
        try:
            if not resume_wait:
                if await self.service.transition(job_id, Event.INSTALL_STARTED) is None:
                    return  # cancelled before it began
                await installer.install(await self.service.rendered(job_id))
                if await self.service.transition(job_id, Event.INSTALLED) is None:
                    return
                # every flow may have reported already (the completion callback had to leave
                # the decision to the end of install)
                if await self.service.complete(job_id, by="install task") != Completion.NOT_YET:
                    return
            await installer.wait(reports=lambda flow: self._reported(job_id, flow))
            await self.counts_from_records(job_id, installer)
            await self.service.complete(job_id, by="wait task", processes_done=True)
        except asyncio.CancelledError:
            return  # the service recorded why (cancel, completion, failure) before stopping us
        except TaskFailed as exc:
            await self._fail(job_id, exc.reason, exc.message)
        except Exception as exc:
            log.exception("task crashed", job_id=job_id)
            await self._fail(job_id, "InternalError", f"{type(exc).__name__}: {exc}")

    async def _fail(self, job_id: str, reason: str, message: str) -> None:
        job = await self.service.get(job_id)
        task = "install" if job.state in (State.PENDING, State.INSTALLING) else "wait"
        await self.service.fail(
            job_id, task=task, reason=reason, message=message, by=f"{task} task"
        )

    async def counts_from_records(self, job_id: str, installer: LocalInstaller) -> None:
        """The final counters of batch-flow processes that completed without their completion
        callback reaching the job (it ended while the scheduler was down), from the flows' own
        termination records."""
        job = await self.service.get(job_id)
        for flow, record in installer.completed_flows():
            status = job.flows.get(flow)
            if status is None or record.get("shard", 0) in job.shards_completed.get(flow, []):
                continue
            try:
                counters = FlowCounters.model_validate(record)
            except ValueError:
                continue  # a record without counters: the job keeps what it was told
            job = await self.service.record_report(job_id, flow, counters, final=True)

    def _reported(self, job_id: str, flow: str) -> FlowReport | None:
        """What the service has heard from a flow (kept fresh by a listener)."""
        return self._reports.get(job_id, {}).get(flow)

    def observe(self, job: JobRecord) -> None:
        """Keep what flows reported at hand for the wait task (it outlives a restart)."""
        self._reports[job.id] = {
            name: FlowReport(completed=True, error=f.error)
            for name, f in job.flows.items()
            if f.state in ("COMPLETED", "FAILED")
        }

    async def recover(self, jobs: list[JobRecord]) -> None:
        """Pick up the unfinished jobs of a previous run of the scheduler."""
        for job in jobs:
            bound = log.bind(job_id=job.id, state=str(job.state))
            installer = self._installer(job.id)
            if job.state == State.PENDING:
                bound.info("job resumed: starting")
                self._spawn(job.id, self._run(job.id, installer, resume_wait=False))
            elif job.state == State.INSTALLING:
                bound.warning("job failed: the scheduler restarted during its install task")
                await self._restarted(
                    job.id, Event.INSTALL_FAILED, "while the job was being installed", installer
                )
            elif job.state == State.RUNNING:
                attached = LocalInstaller.reattach(
                    job_id=job.id,
                    job_dir=self.job_dir(job.id),
                    callback_url=self.base_url,
                    callback_token=callback_token(self.secret, job.id),
                    grace_period=self.grace_period,
                )
                if attached is None:
                    bound.warning("job failed: its processes did not survive the restart")
                    await self._restarted(
                        job.id, Event.WAIT_FAILED, "and the job's processes were gone", installer
                    )
                else:
                    bound.info("job re-attached to its processes")
                    self.observe(job)
                    self._spawn(job.id, self._run(job.id, attached, resume_wait=True))
            elif job.state == State.STOPPING:
                bound.info("job resumed: running its finally task again")
                self._spawn(job.id, self._finally_only(job.id, installer))

    async def _restarted(
        self, job_id: str, event: Event, what: str, installer: LocalInstaller
    ) -> None:
        """Fail a job the restart cannot resume, then run its finally task."""
        await self.service.transition(
            job_id, event, reason=RESTARTED, message=f"the scheduler restarted {what}"
        )
        self._spawn(job_id, self._finally_only(job_id, installer))

    async def _finally_only(self, job_id: str, installer: LocalInstaller) -> None:
        try:
            await installer.uninstall()
        except Exception as exc:
            await self.service.transition(
                job_id, Event.FINALLY_FAILED, reason="UninstallFailed", message=str(exc)
            )
            return
        await self.service.transition(job_id, Event.FINALLY_DONE)

    async def close(self) -> None:
        """Leave running jobs running (a restart re-attaches); stop watching them."""
        for task in [*self._phases.values(), *self._runners.values()]:
            task.cancel()
        if self._runners:
            await asyncio.wait(list(self._runners.values()), timeout=5)

    async def ready(self) -> bool:
        return True

    def log_files(self, job_id: str) -> dict[str, Path]:
        job_dir = self.job_dir(job_id)
        out: dict[str, Path] = {}
        for kind in ("services", "flows"):
            for path in sorted((job_dir / kind).glob("*.log")):
                out[f"{kind[:-1]}/{path.stem}"] = path
        return out
