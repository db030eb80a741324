"""`/healthz`, `/readyz`, `/metrics`."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scheduler.api.deps import JobsDep, MetricsDep
from scheduler.states import State

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Store or backend not reachable."}})
async def readyz(jobs: JobsDep) -> Response:
    """Readiness: the store and the backend are reachable."""
    problems = await jobs.ready()
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/metrics", response_class=Response)
async def metrics(jobs: JobsDep, metrics: MetricsDep) -> Response:
    """Prometheus metrics: jobs by state, transitions, API latency."""
    counts = await jobs.count_by_state()
    for state in State:
        metrics.jobs.labels(str(state)).set(counts.get(str(state), 0))
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
