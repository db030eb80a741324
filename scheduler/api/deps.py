"""FastAPI dependencies: the app's state (jobs, metrics) and auth.

No I/O. `ApiAuth` requires an API bearer token when any is configured; `JobAuth` also accepts
the job's callback token; `CallbackAuth` always requires one of the two.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from scheduler.auth import is_api_token, is_callback_token
from scheduler.backends.base import Jobs
from scheduler.config import Settings
from scheduler.errors import Forbidden, Unauthorized
from scheduler.metrics import Metrics

bearer = HTTPBearer(auto_error=False, description="An API token, or a job's callback token.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def get_jobs(request: Request) -> Jobs:
    jobs: Jobs = request.app.state.jobs
    return jobs


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


JobsDep = Annotated[Jobs, Depends(get_jobs)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def _check(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    job_id: str | None,
    *,
    open_without_tokens: bool,
) -> None:
    settings: Settings = request.app.state.settings
    tokens = settings.tokens()
    if credentials is None:
        if not tokens and open_without_tokens:
            return
        raise Unauthorized()
    token = credentials.credentials
    if tokens and is_api_token(tokens, token):
        return
    secret: bytes = request.app.state.secret
    if job_id is not None and is_callback_token(secret, job_id, token):
        return
    if not tokens and open_without_tokens and job_id is None:
        return
    raise Forbidden()


# async: FastAPI would run plain functions in its thread pool, a hop per dependency per request;
# the settings come from the app state, not from a dependency of their own: one dependency less
# to solve on every request


async def api_auth(request: Request, credentials: Credentials) -> None:
    """An API token, when any is configured."""
    _check(request, credentials, None, open_without_tokens=True)


async def job_auth(job_id: str, request: Request, credentials: Credentials) -> None:
    """An API token (when configured) or this job's callback token."""
    _check(request, credentials, job_id, open_without_tokens=True)


async def callback_auth(job_id: str, request: Request, credentials: Credentials) -> None:
    """This job's callback token, or an API token; required even without API tokens."""
    _check(request, credentials, job_id, open_without_tokens=False)


ApiAuth = Depends(api_auth)
JobAuth = Depends(job_auth)
CallbackAuth = Depends(callback_auth)
