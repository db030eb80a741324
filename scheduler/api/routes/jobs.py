"""`/api/v1/jobs`: start, list, get, cancel a job; its IR bundle, values, events and logs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import PlainTextResponse

from ir.bundle import JobBundle
from scheduler.api.body import StrictJSONRoute
from scheduler.api.deps import JobsDep, access
from scheduler.api.query import parse_query, query_openapi
from scheduler.auth import Role
from scheduler.errors import JobNotFound
from scheduler.schemas import (
    ErrorBody,
    EventPublic,
    JobCreate,
    JobListParams,
    JobPublic,
    JobsPublic,
    Problem,
)

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], route_class=StrictJSONRoute)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such job."}
}
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No bearer token."},
    403: {"model": Problem, "description": "The token is not accepted, or its role is too low."},
}


@router.post(
    "",
    status_code=201,
    **access(Role.SUBMIT),
    responses={
        200: {"model": JobPublic, "description": "The job this Idempotency-Key already started."},
        409: {"model": Problem, "description": "The Idempotency-Key was used with another body."},
        413: {"model": Problem, "description": "The body is larger than the server allows."},
        422: {"model": ErrorBody, "description": "Invalid IR or request, or over a limit."},
        **_AUTH,
    },
)
async def start_job(
    body: JobCreate,
    jobs: JobsDep,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=256, min_length=1)
    ] = None,
) -> JobPublic:
    """Pre-process the IR and start a job (install -> wait -> finally). Role: submit."""
    job, created = await jobs.start(body, idempotency_key=idempotency_key)
    if not created:
        response.status_code = 200
    return job.public()


@router.get(
    "",
    **access(Role.READ, **query_openapi(JobListParams)),
    response_model=JobsPublic,
    responses={422: {"model": ErrorBody, "description": "Bad filter or cursor."}, **_AUTH},
)
async def list_jobs(request: Request, jobs: JobsDep) -> Response:
    """Jobs, newest first, filtered; follow `next` for the following page. Role: read."""
    query = parse_query(JobListParams, request.query_params).query()
    return Response(await jobs.list_public(query), media_type="application/json")


@router.get(
    "/{job_id}",
    **access(Role.READ),
    response_model=JobPublic,
    responses={**_NOT_FOUND, **_AUTH},
)
async def get_job(job_id: str, jobs: JobsDep) -> Response:
    """A job's status: state, current task, flows' counters, and for failures the reason.
    Role: read."""
    return Response(await jobs.get_public(job_id), media_type="application/json")


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    **access(Role.SUBMIT),
    responses={
        409: {"model": JobPublic, "description": "Already finished."},
        **_NOT_FOUND,
        **_AUTH,
    },
)
async def cancel_job(job_id: str, jobs: JobsDep) -> JobPublic:
    """Cancel a job: its finally task still runs. Idempotent. Role: submit."""
    return (await jobs.cancel(job_id)).public()


@router.get(
    "/{job_id}/ir", **access(Role.SUBMIT, job_token=True), responses={**_NOT_FOUND, **_AUTH}
)
async def get_bundle(job_id: str, jobs: JobsDep) -> JobBundle:
    """What the install task downloads: the job's IR and everything to pre-process it.
    Role: submit, or the job's callback token."""
    return await jobs.bundle(job_id)


@router.get(
    "/{job_id}/values", **access(Role.READ, job_token=True), responses={**_NOT_FOUND, **_AUTH}
)
async def get_values(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    """The job's Helm values file (secret-looking values redacted). Role: read, or the job's
    callback token."""
    return await jobs.values(job_id)


@router.get("/{job_id}/events", **access(Role.READ), responses={**_NOT_FOUND, **_AUTH})
async def get_events(job_id: str, jobs: JobsDep) -> list[EventPublic]:
    """The job's state history. Role: read."""
    return await jobs.events(job_id)


@router.get(
    "/{job_id}/logs",
    **access(Role.READ),
    response_class=PlainTextResponse,
    responses={**_NOT_FOUND, **_AUTH},
)
async def get_logs(
    job_id: str,
    jobs: JobsDep,
    flow: Annotated[str | None, Query(max_length=63)] = None,
    service: Annotated[str | None, Query(max_length=63)] = None,
    tail: Annotated[int, Query(ge=1, le=100_000)] = 200,
) -> PlainTextResponse:
    """The last lines of a job's service and flow logs (local backend). Role: read."""
    await jobs.get(job_id)
    files = jobs.log_files(job_id)
    wanted = {
        name: path
        for name, path in files.items()
        if (flow is None and service is None)
        or (flow is not None and (name == f"flow/{flow}" or name.startswith(f"flow/{flow}-")))
        or (service is not None and name == f"service/{service}")
    }
    if (flow or service) and not wanted:
        raise JobNotFound(
            f"{job_id}: no log for {'flow ' + flow if flow else 'service ' + str(service)}"
        )
    parts = []
    for name, path in wanted.items():
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[-tail:]
        parts.append(f"==> {name} <==\n" + "\n".join(lines))
    return PlainTextResponse("\n".join(parts) + ("\n" if parts else ""))
