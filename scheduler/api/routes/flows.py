"""`/api/v1/jobs/{id}/flows/{flow}`: what flows report (callback token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from scheduler.api.body import StrictJSONRoute
from scheduler.api.deps import JobsDep, access
from scheduler.auth import Role
from scheduler.schemas import FlowReport, JobPublic, Problem

router = APIRouter(
    prefix="/api/v1/jobs/{job_id}/flows/{flow}", tags=["flows"], route_class=StrictJSONRoute
)

_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No token."},
    403: {"model": Problem, "description": "Neither this job's callback token nor an admin token."},
    404: {"model": Problem, "description": "No such job or flow."},
    409: {"model": JobPublic, "description": "The job has ended: it takes no more reports."},
}


@router.post(
    "/progress", status_code=202, **access(Role.ADMIN, callback=True), responses=_RESPONSES
)
async def flow_progress(job_id: str, flow: str, report: FlowReport, jobs: JobsDep) -> JobPublic:
    """Periodic counters of a flow. The job's callback token, or role admin."""
    return (await jobs.report(job_id, flow, report, final=False)).public()


@router.post(
    "/complete", status_code=202, **access(Role.ADMIN, callback=True), responses=_RESPONSES
)
async def flow_complete(job_id: str, flow: str, report: FlowReport, jobs: JobsDep) -> JobPublic:
    """A batch flow (or one shard of it) is done; when every batch flow is, the job completes.
    The job's callback token, or role admin."""
    return (await jobs.report(job_id, flow, report, final=True)).public()
