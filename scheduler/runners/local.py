"""The local runner (a `Runner`, the embedded local backend): a job's install -> wait -> finally
pipeline as asyncio tasks in this process, its scoring services and flows as supervised child
processes (`local_runner`).

Does I/O (processes and files under `$TEKSCORE_HOME/jobs/<id>/`, through
`local_runner.LocalInstaller`). The install task takes the values rendered when the job started
from the job service, in this process (no second pre-processing, no HTTP call to itself); the
wait task ends by asking the job service whether the job is complete (`JobService.complete`,
the one place that decides), after adding the counters of flows whose completion callback never
came from their termination records. A scheduler restart re-attaches to the live processes of
running jobs, or fails the job with reason `scheduler-restarted` and cleans up: no job is ever
forgotten.

At most `max_running_jobs` jobs run at once, and their processes together stay within
`max_server_processes`: a job that does not fit waits PENDING in a queue, oldest first, and
starts when others finish (a job at the head waits for room rather than be overtaken). The queue
is the PENDING jobs of the store, so a restart keeps it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import structlog

from common.task_errors import TaskFailed
from local_runner.environment import ChildEnv
from local_runner.installer import FlowReport, LocalInstaller
from local_runner.priority import JOB_NICE
from local_runner.processes import find_tekscore
from local_runner.sandbox import Sandbox, detect, python_paths
from local_runner.warm import WarmPool
from scheduler.auth import callback_token
from scheduler.config import Settings
from scheduler.jobs import JobService
from scheduler.limits import job_processes
from scheduler.rules import Completion
from scheduler.schemas import BackendInfo, JobRecord
from scheduler.schemas import FlowReport as FlowCounters
from scheduler.states import Event, State

log = structlog.get_logger("scheduler.local")

RESTARTED = "scheduler-restarted"
VENV_CACHE = "TEKSCORE_VENV_CACHE"


def job_environment(settings: Settings) -> ChildEnv:
    """What the server's environment lends its jobs' processes (`local_runner.environment`)."""
    return ChildEnv(
        source=dict(os.environ),
        names=tuple(settings.child_env),
        secrets_dir=None if settings.secrets_dir is None else str(settings.secrets_dir),
    )


def job_sandbox(settings: Settings) -> Sandbox | None:
    """The bubblewrap sandbox of `--sandbox`, or None (`off`, or `auto` without a working
    bwrap: one warning line). Raises `SandboxUnavailable` for `required` without one."""
    bwrap, warning = detect(settings.sandbox)
    if warning is not None:
        log.warning("no sandbox for job processes", why=warning)
    if bwrap is None:
        return None
    access = settings.access()
    shared = []
    cache = os.environ.get(VENV_CACHE)
    if cache and Path(cache).is_absolute():  # python models' requirements, installed once
        Path(cache).mkdir(parents=True, exist_ok=True)
        shared.append(Path(os.path.realpath(cache)))
    links = os.environ.get("PIP_FIND_LINKS", "")
    readable = [Path(os.path.realpath(p)) for p in links.split() if Path(p).is_absolute()]
    return Sandbox(
        bwrap=bwrap,
        home=settings.home,
        data_roots=access.data_roots or (),
        code_folders=access.code_folders or (),
        python=python_paths(),
        readable=tuple(readable),
        shared=tuple(shared),
    )


def job_warm_pool(
    settings: Settings, environment: ChildEnv, sandbox: Sandbox | None
) -> WarmPool | None:
    """The warm spares of `TEKSCORE_WARM_RUNTIMES` (`local_runner.warm`), or None for 0."""
    if settings.warm_runtimes < 1:
        return None
    return WarmPool(
        home=settings.home,
        count=settings.warm_runtimes,
        environment=environment,
        sandbox=sandbox,
        script=find_tekscore(),
        nice=settings.job_nice,
    )


class LocalRunner:
    """Runs jobs on this machine."""

    kind = "local"
    ends_during_install = False  # install asks `complete` itself when it ends

    def __init__(
        self,
        *,
        service: JobService,
        home: Path,
        base_url: str,
        secret: bytes,
        grace_period: float = 10.0,
        ready_timeout: float = 120.0,
        environment: ChildEnv | None = None,
        sandbox: Sandbox | None = None,
        max_running_jobs: int = 1_000_000,
        max_server_processes: int = 1_000_000,
        warm: WarmPool | None = None,
        nice: int = JOB_NICE,
    ) -> None:
        self.service = service
        self.nice = nice
        self.warm = warm
        self.environment = environment
        self.sandbox = sandbox
        self.max_running_jobs = max_running_jobs
        self.max_server_processes = max_server_processes
        # PENDING jobs waiting for room, oldest first, with the processes each runs (counted once)
        self._queue: dict[str, int] = {}
        self._holding: dict[str, int] = {}  # jobs whose processes run (or may): how many
        self._pumping = asyncio.Lock()
        self._pumps: set[asyncio.Task[None]] = set()
        self._told: set[str] = set()  # queued jobs whose wait was logged
        self._closing = False
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
            environment=self.environment,
            sandbox=self.sandbox,
            warm=self.warm,
            nice=self.nice,
        )

    async def start(self, job: JobRecord, values: dict[str, Any]) -> None:
        """Queue the job; it starts at once when there is room."""
        need = job_processes(values)
        async with self._pumping:
            self._queue[job.id] = need
        await self._pump()

    async def _pump(self) -> None:
        """Start queued jobs, oldest first, while they fit."""
        async with self._pumping:
            while self._queue and not self._closing:
                job_id, need = next(iter(self._queue.items()))
                running, used = len(self._holding), sum(self._holding.values())
                if running >= self.max_running_jobs or (
                    running and used + need > self.max_server_processes
                ):
                    if job_id not in self._told:
                        self._told.add(job_id)
                        log.info(
                            "job queued",
                            job_id=job_id,
                            queued=len(self._queue),
                            running_jobs=running,
                            running_processes=used,
                            processes=need,
                        )
                    return
                del self._queue[job_id]
                self._told.discard(job_id)
                self._spawn(
                    job_id, self._run(job_id, self._installer(job_id), resume_wait=False), need
                )

    async def _processes(self, job_id: str) -> int:
        """How many processes a job resumed after a restart runs (its values are stored)."""
        try:
            return job_processes(await self.service.rendered(job_id))
        except Exception:  # its install task will say what is wrong with it
            log.exception("job processes unknown", job_id=job_id)
            return 1

    def _spawn(
        self, job_id: str, coro: Coroutine[Any, Any, None], holding: int | None = None
    ) -> None:
        """Run a job's task; with `holding`, the job holds that many processes until it ends."""
        if holding is not None:
            self._holding[job_id] = holding
        task = asyncio.create_task(coro)
        self._runners[job_id] = task
        task.add_done_callback(lambda _: self._ended(job_id))

    def _ended(self, job_id: str) -> None:
        self._runners.pop(job_id, None)
        if self._holding.pop(job_id, None) is not None and not self._closing:
            pump = asyncio.get_running_loop().create_task(self._pump())
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def stop(self, job: JobRecord) -> None:
        job_id = job.id
        async with self._pumping:
            queued = job_id in self._queue
            if queued:
                del self._queue[job_id]
                self._told.discard(job_id)
        if queued:  # cancelled while waiting: nothing to stop, its finally task ends it
            self._spawn(job_id, self._finally_only(job_id, self._installer(job_id)))
            return
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
        # flows that all reported their completion need their services no more: stop them together
        done = bool(job.flows) and all(f.state == "COMPLETED" for f in job.flows.values())
        try:
            await installer.uninstall(flows_done=done)
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
                endpoints = (installer.endpoints.services, installer.endpoints.flows)
                if (
                    await self.service.transition(job_id, Event.INSTALLED, endpoints=endpoints)
                    is None
                ):
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
            await self._fail(job_id, exc.reason, exc.message, exc)
        except Exception as exc:
            log.exception("task crashed", job_id=job_id)
            await self._fail(job_id, "InternalError", f"{type(exc).__name__}: {exc}")

    async def _fail(
        self, job_id: str, reason: str, message: str, exc: TaskFailed | None = None
    ) -> None:
        job = await self.service.get(job_id)
        task = "install" if job.state in (State.PENDING, State.INSTALLING) else "wait"
        await self.service.fail(
            job_id,
            task=task,
            reason=reason,
            message=message,
            by=f"{task} task",
            part=exc.part if exc is not None else None,
            log_tail=exc.log_tail if exc is not None else None,
        )

    async def counts_from_records(self, job_id: str, installer: LocalInstaller) -> None:
        """The final counters of batch-flow processes that completed without their completion
        callback reaching the job (it ended while the scheduler was down), from the flows' own
        termination records."""
        job = await self.service.get(job_id)
        for flow, record in installer.completed_flows():
            status = job.flows.get(flow)
            shard = record.get("shard", 0)
            if status is None or any(
                r.index == shard and r.state in ("COMPLETED", "FAILED") for r in status.replicas
            ):
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
        """Pick up the unfinished jobs of a previous run of the scheduler (oldest first): the
        PENDING ones queue again in their order, after the jobs that still hold processes.
        The first set of warm spares starts here."""
        if self.warm is not None:
            self.warm.clear()
            self.warm.refill()
        for job in jobs:
            bound = log.bind(job_id=job.id, state=str(job.state))
            installer = self._installer(job.id)
            if job.state == State.PENDING:
                bound.info("job resumed: queued")
                self._queue[job.id] = await self._processes(job.id)
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
                    need = await self._processes(job.id)
                    self._spawn(job.id, self._run(job.id, attached, resume_wait=True), need)
            elif job.state == State.STOPPING:
                bound.info("job resumed: running its finally task again")
                self._spawn(job.id, self._finally_only(job.id, installer))
        await self._pump()

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
        """Leave running jobs running (a restart re-attaches) and queued jobs PENDING (a restart
        queues them again); stop watching them."""
        self._closing = True
        if self.warm is not None:
            await self.warm.close()
        for task in [*self._phases.values(), *self._runners.values(), *self._pumps]:
            task.cancel()
        if self._runners:
            await asyncio.wait(list(self._runners.values()), timeout=5)

    async def problems(self) -> list[str]:
        return []

    def log_files(self, job_id: str) -> dict[str, Path]:
        job_dir = self.job_dir(job_id)
        out: dict[str, Path] = {}
        for kind in ("services", "flows"):
            for path in sorted((job_dir / kind).glob("*.log")):
                out[f"{kind[:-1]}/{path.stem}"] = path
        return out
