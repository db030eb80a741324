"""FastAPI dependencies: the app's state (the job service, metrics) and auth by role.

No I/O. `access(role)` gives a route its auth dependency and marks its OpenAPI operation with
`x-tekscore-role`. With API tokens configured a call needs a token (none: 401) whose role is at
least the route's (an unknown token, or a lower role: 403). `job_token=True` also accepts the
job's callback token (its `/ir` and `/values`, its flows' callbacks). Without any API token
configured (the server then listens on loopback only) every call is allowed, except the flow
callbacks: they always need the job's callback token or an admin token.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from scheduler.auth import Role, is_callback_token, role_of
from scheduler.config import Settings
from scheduler.errors import Forbidden, Unauthorized
from scheduler.jobs import JobService
from scheduler.metrics import Metrics

bearer = HTTPBearer(auto_error=False, description="An API token, or a job's callback token.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def get_jobs(request: Request) -> JobService:
    jobs: JobService = request.app.state.jobs
    return jobs


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


JobsDep = Annotated[JobService, Depends(get_jobs)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def _check(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    *,
    role: Role,
    job_id: str | None,
    open_without_tokens: bool,
) -> None:
    settings: Settings = request.app.state.settings
    tokens = settings.tokens()
    if credentials is None:
        if not tokens and open_without_tokens:
            return
        raise Unauthorized()
    token = credentials.credentials
    secret: bytes = request.app.state.secret
    if job_id is not None and is_callback_token(secret, job_id, token):
        return
    if tokens:
        has = role_of(tokens, token)
        if has is None:
            raise Forbidden()
        if has < role:
            raise Forbidden(f"this token's role is {has}; this call needs {role}")
        return
    if open_without_tokens and job_id is None:
        return
    raise Forbidden()


# async: FastAPI would run plain functions in its thread pool, a hop per dependency per request;
# the settings come from the app state, not from a dependency of their own: one dependency less
# to solve on every request


@functools.cache
def _dependency(role: Role, *, job_token: bool, callback: bool) -> Any:
    if not (job_token or callback):

        async def api_auth(request: Request, credentials: Credentials) -> None:
            _check(request, credentials, role=role, job_id=None, open_without_tokens=True)

        return Depends(api_auth)

    async def job_auth(job_id: str, request: Request, credentials: Credentials) -> None:
        _check(request, credentials, role=role, job_id=job_id, open_without_tokens=not callback)

    return Depends(job_auth)


def access(
    role: Role, *, job_token: bool = False, callback: bool = False, **openapi: Any
) -> dict[str, Any]:
    """A route's `dependencies` and `openapi_extra` (plus any `openapi` fields given): the
    role it needs; `job_token`: the job's callback token is accepted too; `callback`: a flow's
    report, which needs the job's callback token or the role even when no API token is
    configured."""
    extra = {**openapi, "x-tekscore-role": str(role)}
    if job_token or callback:
        extra["x-tekscore-callback-token"] = True
    return {
        "dependencies": [_dependency(role, job_token=job_token, callback=callback)],
        "openapi_extra": extra,
    }
