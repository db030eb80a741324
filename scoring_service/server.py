"""Running the app under uvicorn (uvloop, httptools), one process or `--workers N`.

Does I/O: binds the socket and serves until SIGTERM/SIGINT, on which uvicorn stops accepting
connections and finishes the requests in flight (bounded by `GRACEFUL_SECONDS`).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import structlog
import uvicorn

from common.logs import configure_logging
from scoring_service.app import create_asgi_app
from scoring_service.config import SPEC_ENV, ServeSpec
from scoring_service.workers import READY_DIR_ENV

GRACEFUL_SECONDS = 25
log = structlog.get_logger("scoring_service.server")


def run(spec: ServeSpec) -> None:
    """Serve until stopped."""
    settings = spec.settings
    configure_logging(settings.log_level, settings.log_format, stdlib_too=True, cache=True)
    options: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
        "server_header": False,
    }
    log.info(
        "serve_model",
        service=spec.service.name,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        coalesce=settings.coalesce,
        models=[f"{m.name}={m.type}:{m.uri}" for m in spec.service.models],
    )
    if settings.workers == 1:
        uvicorn.run(create_asgi_app(spec), **options)  # type: ignore[arg-type]
    else:
        os.environ[SPEC_ENV] = spec.model_dump_json(by_alias=True)
        ready_dir = tempfile.mkdtemp(prefix="tekscore-ready-")
        os.environ[READY_DIR_ENV] = ready_dir
        try:
            uvicorn.run(
                "scoring_service.app:app_from_env",
                factory=True,
                workers=settings.workers,
                **options,  # type: ignore[arg-type]
            )
        finally:
            shutil.rmtree(ready_dir, ignore_errors=True)
