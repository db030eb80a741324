"""The FastAPI application: `create_app(spec)`, its lifespan, and the error-to-HTTP mapping.

Building the app does no I/O; the lifespan starts loading the models in the background (so
`/v2/health/live` answers during a long download or import) and releases them at shutdown.
Every error answer is `{"error": "..."}`: `RequestError` subclasses with their status code,
routing/validation errors with theirs, anything unexpected as 500 (logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from common.logs import configure_logging
from scoring_service.config import SPEC_ENV, ServeSpec
from scoring_service.errors import RequestError
from scoring_service.metrics import Metrics
from scoring_service.racetrack import router as racetrack_router
from scoring_service.registry import Registry
from scoring_service.routes import json_response, router, scoring_endpoint, scoring_routes
from scoring_service.state import ServiceState
from scoring_service.workers import WorkerReadiness

log = structlog.get_logger("scoring_service.app")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load models in the background; on shutdown stop loading and close the models."""
    state: ServiceState = app.state.service
    settings = state.spec.settings
    own_dir = settings.model_dir is None
    dest = Path(settings.model_dir or tempfile.mkdtemp(prefix="tekscore-models-"))
    log.info("service_starting", service=state.spec.service.name, models=state.registry.names)
    loading = asyncio.create_task(_load(state, dest))
    try:
        yield
    finally:
        loading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loading
        state.registry.close()
        if own_dir:
            shutil.rmtree(dest, ignore_errors=True)
        log.info("service_stopped", service=state.spec.service.name)


async def _load(state: ServiceState, dest: Path) -> None:
    await state.registry.load_all(dest)
    if state.workers is not None and state.registry.all_ready():
        state.workers.mark_ready()


async def _request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    return json_response({"error": exc.message}, exc.status_code)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = [
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()
    ]
    return json_response({"error": "; ".join(parts)}, 422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return json_response({"error": str(exc.detail)}, exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("request_failed", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
    return json_response({"error": f"internal error: {type(exc).__name__}"}, 500)


class ScoringApp:
    """The ASGI app served: `POST /v2/models/{m}/records|infer` go straight to their handlers
    (no middleware stack: at batch 256 the layers wrapping `receive`/`send` cost more than
    encoding the answer); everything else, and the lifespan, goes to the FastAPI app, which
    also routes the two endpoints (same handlers) for anyone mounting it directly."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = scoring_endpoint(scope)
        if match is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        scope["path_params"] = {"model_name": match[0]}
        request = Request(scope, receive, send)
        try:
            response = await match[1](request)
        except RequestError as exc:
            response = await _request_error(request, exc)
        except Exception as exc:
            response = await _unexpected(request, exc)
        await response(scope, receive, send)


def create_asgi_app(spec: ServeSpec) -> ScoringApp:
    """What uvicorn serves: `create_app(spec)` with the direct path for the scoring routes."""
    return ScoringApp(create_app(spec))


def create_app(spec: ServeSpec) -> FastAPI:
    """The scoring-service app for one resolved configuration."""
    app = FastAPI(
        title="tekscore scoring service",
        summary="Open Inference Protocol V2 plus a records endpoint.",
        lifespan=lifespan,
    )
    app.state.service = ServiceState(
        spec=spec,
        registry=Registry(list(spec.service.models)),
        metrics=Metrics(),
        workers=WorkerReadiness.from_env(spec.settings.workers),
    )
    app.router.routes[0:0] = scoring_routes()
    app.include_router(router)
    app.include_router(racetrack_router)
    app.add_exception_handler(RequestError, _request_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    return app


def app_from_env() -> ScoringApp:
    """Factory for uvicorn worker processes: the spec comes in `TEKSCORE_SERVE_SPEC`."""
    spec = ServeSpec.model_validate_json(os.environ[SPEC_ENV])
    configure_logging(
        spec.settings.log_level, spec.settings.log_format, stdlib_too=True, cache=True
    )
    return create_asgi_app(spec)


__all__ = ["ScoringApp", "app_from_env", "create_app", "create_asgi_app", "lifespan"]
