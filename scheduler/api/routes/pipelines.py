"""`/api/v1/pipelines/validate`: pre-processing as a dry run."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from scheduler.api.body import StrictJSONRoute
from scheduler.api.deps import JobsDep, access
from scheduler.auth import Role
from scheduler.schemas import ErrorBody, JobCreate, Problem

router = APIRouter(prefix="/api/v1/pipelines", tags=["pipelines"], route_class=StrictJSONRoute)


@router.post(
    "/validate",
    **access(Role.SUBMIT),
    responses={
        413: {"model": Problem, "description": "The body is larger than the server allows."},
        422: {"model": ErrorBody, "description": "Every problem of the IR, or a limit passed."},
    },
)
async def validate_pipeline(body: JobCreate, jobs: JobsDep) -> dict[str, Any]:
    """Pre-process the IR as a start would, within the same limits, without starting anything:
    the values (secret-looking values redacted, as `/jobs/{id}/values`), or 422. Role: submit."""
    return await jobs.validate(body)
