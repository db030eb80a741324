"""The scheduling server's FastAPI app: `create_app(settings)` and its lifespan.

The lifespan reads the globals file and the channel registry, then, for the local backend,
opens the store, builds the job service and the backend, and lets the backend pick up the
unfinished jobs of a previous run; for the tekton backend it builds `TektonJobs` (no store: the
jobs are PipelineRuns) and starts its watches. Nothing is created at import time.
"""

from __future__ import annotations

import fcntl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

import structlog
from fastapi import FastAPI

import ir
from common.logs import configure_logging
from ir.bundle import read_registry
from scheduler import ui
from scheduler.api import errors
from scheduler.api.body import BodyLimit
from scheduler.api.routes import flows, health, jobs, pipelines, userinfo
from scheduler.backends.base import Backend
from scheduler.config import Settings
from scheduler.jobs import JobService
from scheduler.limits import JobLimits
from scheduler.metrics import LatencyMiddleware, Metrics
from scheduler.schemas import JobRecord
from scheduler.states import Event
from scheduler.store import Store, StoreError

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


def make_backend(settings: Settings, service: JobService) -> Backend:
    """The configured backend."""
    if settings.backend == "local":
        from scheduler.backends.local import LocalBackend, job_environment, job_sandbox

        return LocalBackend(
            service=service,
            home=settings.home,
            base_url=settings.base_url(),
            secret=settings.secret_bytes(),
            grace_period=settings.grace_period,
            ready_timeout=settings.ready_timeout,
            environment=job_environment(settings),
            sandbox=job_sandbox(settings),
            max_running_jobs=settings.max_running_jobs,
            max_server_processes=settings.max_server_processes,
        )
    raise RuntimeError(
        f"backend {settings.backend!r} has no job service backend: the tekton backend is "
        "built by create_app as its own Jobs (scheduler.backends.tekton.TektonJobs)"
    )


RunnerFactory = Callable[[Settings, JobService], Backend]
"""Builds the backend that runs the jobs of the local job service (`make_backend`; a test may
give one that runs no process)."""


def create_app(settings: Settings | None = None, *, runner: RunnerFactory | None = None) -> FastAPI:
    """The app; `settings` default to the environment, `runner` to `make_backend`."""
    settings = settings or Settings()
    build_runner = runner or make_backend
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        app.state.secret = settings.secret_bytes()
        if settings.backend == "tekton":
            async with tekton_jobs(app):
                yield
            return
        lock = lock_home(settings.home)
        try:
            store = await Store.open(settings.home / "state.db")
        except StoreError as exc:
            lock.close()
            log.error("scheduler cannot start", error=str(exc))
            raise
        service = JobService(
            store=store,
            globals_=ir.load_globals(settings.globals_file),
            channels=read_registry(settings.channels),
            limits=JobLimits.from_settings(settings),
        )

        def count(job: JobRecord, event: Event) -> None:
            metrics.transitions.labels(str(event), str(job.state)).inc()

        service.listeners.append(count)
        backend = build_runner(settings, service)
        service.backend = backend
        app.state.jobs = service
        app.state.backend = backend
        unfinished = await store.unfinished()
        log.info(
            "scheduler started",
            backend=backend.kind,
            home=str(settings.home),
            url=settings.base_url(),
            web_view=f"{settings.base_url()}/ui/",
            auth="bearer tokens" if settings.tokens() else "none (loopback only)",
            unfinished_jobs=len(unfinished),
        )
        await backend.recover(unfinished)
        try:
            yield
        finally:
            await backend.close()
            await store.close()
            lock.close()

    @asynccontextmanager
    async def tekton_jobs(app: FastAPI) -> AsyncIterator[None]:
        """The tekton backend: no store, the jobs are the PipelineRuns (watched)."""
        from scheduler.backends.tekton import TektonJobs

        jobs = await TektonJobs.connect(
            settings=settings,
            globals_=ir.load_globals(settings.globals_file),
            channels=read_registry(settings.channels),
        )
        app.state.jobs = jobs
        app.state.backend = None
        try:
            await jobs.start_watches()
            log.info(
                "scheduler started",
                backend=jobs.kind,
                namespace=settings.namespace,
                pipeline=settings.pipeline,
                url=settings.base_url(),
                web_view=f"{settings.base_url()}/ui/",
                auth="bearer tokens" if settings.tokens() else "none (loopback only)",
            )
            yield
        finally:
            await jobs.close()

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
