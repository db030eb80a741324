"""The scheduling server's FastAPI app: `create_app(settings)` and its one lifespan.

The lifespan reads the globals file and the channel registry, opens the configured backend's
store and runner (local: the home folder's lock and SQLite store, the local runner; tekton: the
Kubernetes client, the PipelineRun store with its watches, the Tekton runner), starts the
pre-processing worker (`scheduler.workers`), builds the one job service over them, and lets
the runner pick up the unfinished jobs of a previous run.
Nothing is created at import time.
"""

from __future__ import annotations

import fcntl
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import structlog
from fastapi import FastAPI

import ir
from common.logs import configure_logging
from ir.bundle import read_registry
from scheduler import ui
from scheduler.api import errors
from scheduler.api.body import BodyLimit
from scheduler.api.routes import flows, health, jobs, pipelines, userinfo
from scheduler.config import Settings
from scheduler.jobs import JobService
from scheduler.limits import JobLimits
from scheduler.metrics import LatencyMiddleware, Metrics
from scheduler.runners.base import Runner
from scheduler.schemas import JobRecord
from scheduler.states import Event
from scheduler.stores.base import JobStore, StoreError
from scheduler.workers import Renderer

log = structlog.get_logger("scheduler")

VERSION = "0.1.0"


def lock_home(home: Path) -> IO[str]:
    """Hold `home/scheduler.lock` for the server's life: one scheduler per state folder."""
    home.mkdir(parents=True, exist_ok=True)
    handle = (home / "scheduler.lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RuntimeError(
            f"another scheduling server uses {home}: stop it, or give this one another --home "
            "(or point the client at it with --server)"
        ) from None
    return handle


RunnerFactory = Callable[[Settings, JobService], Runner]
"""Builds the runner of the job service (a test may give one that runs no process)."""


@dataclass(frozen=True)
class Backend:
    """What one backend brings to the job service: its store, its runner, and what the start
    log line says about where it keeps jobs."""

    store: JobStore
    runner: RunnerFactory
    where: dict[str, Any]


@asynccontextmanager
async def local_backend(settings: Settings) -> AsyncIterator[Backend]:
    """The home folder (locked), its SQLite store, and the local runner."""
    from scheduler.runners.local import LocalRunner, job_environment, job_sandbox, job_warm_pool
    from scheduler.stores.sqlite import SqliteStore

    lock = lock_home(settings.home)
    try:
        try:
            store = await SqliteStore.open(settings.home / "state.db")
        except StoreError as exc:
            log.error("scheduler cannot start", error=str(exc))
            raise

        def runner(settings: Settings, service: JobService) -> Runner:
            environment, sandbox = job_environment(settings), job_sandbox(settings)
            return LocalRunner(
                service=service,
                home=settings.home,
                base_url=settings.base_url(),
                secret=settings.secret_bytes(),
                grace_period=settings.grace_period,
                ready_timeout=settings.ready_timeout,
                environment=environment,
                sandbox=sandbox,
                max_running_jobs=settings.max_running_jobs,
                max_server_processes=settings.max_server_processes,
                warm=job_warm_pool(settings, environment, sandbox),
                nice=settings.job_nice,
            )

        try:
            yield Backend(store, runner, {"home": str(settings.home)})
        finally:
            await store.close()
    finally:
        lock.close()


@asynccontextmanager
async def tekton_backend(settings: Settings) -> AsyncIterator[Backend]:
    """The Kubernetes client, the PipelineRun store (its watches synced), the Tekton runner."""
    from scheduler.runners.tekton import TektonRunner
    from scheduler.stores.kubernetes import PipelineRunStore
    from tekton.kube import connect

    async with await connect() as kube:
        log.info("kubernetes api", host=kube.host)
        store = PipelineRunStore(kube=kube, settings=settings)
        await store.open()

        def runner(settings: Settings, service: JobService) -> Runner:
            return TektonRunner(
                kube=kube, namespace=settings.namespace, wait_timeout=settings.wait_taskrun_timeout
            )

        try:
            yield Backend(
                store, runner, {"namespace": settings.namespace, "pipeline": settings.pipeline}
            )
        finally:
            await store.close()


def create_app(settings: Settings | None = None, *, runner: RunnerFactory | None = None) -> FastAPI:
    """The app; `settings` default to the environment, `runner` to the backend's own."""
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        app.state.secret = settings.secret_bytes()
        opened = tekton_backend if settings.backend == "tekton" else local_backend
        async with AsyncExitStack() as stack:
            backend = await stack.enter_async_context(opened(settings))
            build_runner = runner or backend.runner
            renderer = Renderer(settings.preprocess_workers)
            renderer.start()
            stack.push_async_callback(renderer.close)
            app.state.renderer = renderer
            service = JobService(
                store=backend.store,
                runner=lambda service: build_runner(settings, service),
                globals_=ir.load_globals(settings.globals_file),
                channels=read_registry(settings.channels),
                limits=JobLimits.from_settings(settings),
                render=renderer.render,
            )
            stack.push_async_callback(service.close)

            def count(job: JobRecord, event: Event) -> None:
                metrics.transitions.labels(str(event), str(job.state)).inc()

            service.listeners.append(count)
            app.state.jobs = service
            unfinished = await service.recover()
            log.info(
                "scheduler started",
                backend=service.kind,
                **backend.where,
                url=settings.base_url(),
                web_view=f"{settings.base_url()}/ui/",
                auth="bearer tokens" if settings.tokens() else "none (loopback only)",
                unfinished_jobs=unfinished,
            )
            yield

    app = FastAPI(
        title="tekscore scheduling server",
        version=VERSION,
        description="Start, query, cancel and complete scoring jobs (install -> wait -> finally).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    errors.install(app)
    for module in (jobs, flows, pipelines, userinfo, health):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    ui.install(app)
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    return app
