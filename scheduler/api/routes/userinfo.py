"""`/api/v1/userinfo`: the caller's role, so a client (the web view) offers only what the token
may do. No I/O."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from scheduler.api.deps import Credentials, access
from scheduler.auth import Role, role_of
from scheduler.config import Settings
from scheduler.schemas import Problem, UserInfo

router = APIRouter(prefix="/api/v1", tags=["auth"])

_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No bearer token."},
    403: {"model": Problem, "description": "The token is not accepted."},
}


@router.get("/userinfo", **access(Role.READ), responses=_AUTH)
async def userinfo(request: Request, credentials: Credentials) -> UserInfo:
    """The caller's role and every role it includes (`read` < `submit` < `admin`). Without API
    tokens configured (loopback only) every caller is admin. Role: read."""
    settings: Settings = request.app.state.settings
    tokens = settings.tokens()
    role = Role.ADMIN
    if tokens and credentials is not None:
        role = role_of(tokens, credentials.credentials) or Role.READ  # access() checked it
    return UserInfo(
        authenticated=bool(tokens),
        role=str(role),
        roles=[str(r) for r in Role if r <= role],
    )
