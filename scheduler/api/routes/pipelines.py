"""`/api/v1/pipelines/validate`: pre-processing as a dry run."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from ir.bundle import render_bundle
from scheduler.api.deps import ApiAuth, JobsDep
from scheduler.jobs import make_bundle
from scheduler.schemas import ErrorBody, JobCreate

router = APIRouter(prefix="/api/v1/pipelines", tags=["pipelines"])


@router.post(
    "/validate",
    dependencies=[ApiAuth],
    responses={422: {"model": ErrorBody, "description": "Every problem of the IR."}},
)
async def validate_pipeline(body: JobCreate, jobs: JobsDep) -> dict[str, Any]:
    """Pre-process the IR as a start would, without starting anything: the values, or 422."""
    bundle = make_bundle(
        body,
        job_id="validate",
        globals_=jobs.globals,
        channels=jobs.channels,
        base_dir=jobs.base_dir,
    )
    rendered = await asyncio.to_thread(render_bundle, bundle)
    return rendered.values
