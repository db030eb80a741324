"""HTTP mapping of errors, in one place: exception handlers installed by `create_app`.

No I/O. Invalid IR and invalid request bodies both answer 422 `{"errors": [{loc, msg, file?,
line?}]}` (a body that is not plain JSON says why: `JSON decode error: ...`); never a 500 for
a caller's mistake.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

import ir
from scheduler.errors import (
    BadCursor,
    Forbidden,
    IdempotencyConflict,
    JobFinished,
    JobNotFound,
    PreprocessUnavailable,
    Unauthorized,
)

log = structlog.get_logger("scheduler.api")


def _problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _request_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for error in exc.errors():
        msg = str(error.get("msg", "invalid"))
        if error.get("type") == "json_invalid" and (ctx := error.get("ctx")):
            msg = f"{msg}: {ctx.get('error')}"
        out.append(
            {"loc": [p for p in error.get("loc", ()) if isinstance(p, str | int)], "msg": msg}
        )
    return out


def install(app: FastAPI) -> None:
    """Register every handler on `app`."""

    @app.exception_handler(ir.IRValidationError)
    async def _ir(request: Request, exc: ir.IRValidationError) -> JSONResponse:
        return JSONResponse({"errors": [i.as_dict() for i in exc.issues]}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _body(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"errors": _request_errors(exc)}, status_code=422)

    @app.exception_handler(BadCursor)
    async def _cursor(request: Request, exc: BadCursor) -> JSONResponse:
        return JSONResponse({"errors": [{"loc": ["query", "cursor"], "msg": str(exc)}]}, 422)

    @app.exception_handler(JobNotFound)
    async def _not_found(request: Request, exc: JobNotFound) -> JSONResponse:
        return _problem(404, str(exc))

    @app.exception_handler(JobFinished)
    async def _finished(request: Request, exc: JobFinished) -> JSONResponse:
        return JSONResponse(exc.job.model_dump(mode="json"), status_code=409)

    @app.exception_handler(IdempotencyConflict)
    async def _conflict(request: Request, exc: IdempotencyConflict) -> JSONResponse:
        return _problem(409, str(exc))

    @app.exception_handler(PreprocessUnavailable)
    async def _unavailable(request: Request, exc: PreprocessUnavailable) -> JSONResponse:
        return _problem(503, str(exc), {"Retry-After": "1"})

    @app.exception_handler(Unauthorized)
    async def _unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
        return _problem(401, str(exc), {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return _problem(403, str(exc))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed", path=request.url.path)
        return _problem(500, "internal error: the scheduler logged the details")
