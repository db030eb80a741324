"""The structlog set-up of every tekscore process: one event per line, JSON or console.

Configures process-wide logging when called (never at import); writes to stderr, looked up when
a logger is made (so a test that swaps `sys.stderr` sees the lines). One style everywhere: each
line has `event` (words, never an f-string), `level`, `timestamp` (ISO, UTC) and the bound
context (job id, flow, ...). Standard-library loggers (uvicorn, aiokafka, boto3, ...) are
rendered the same way, at the same level with `stdlib_too`, else at warning and above.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

LEVEL_ENV = "TEKSCORE_LOG_LEVEL"
FORMAT_ENV = "TEKSCORE_LOG_FORMAT"

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def level_number(name: str) -> int:
    """The logging level of `debug`, `info`, `warning`, `error` or `critical` (else info)."""
    return _LEVELS.get(name.lower(), logging.INFO)


def _stderr_logger(*_: Any) -> structlog.WriteLogger:
    return structlog.WriteLogger(sys.stderr)


def configure_logging(
    level: str | None = None,
    fmt: str | None = None,
    *,
    stdlib_too: bool = False,
    cache: bool = False,
) -> None:
    """Configure structlog and the standard-library root logger.

    `level` defaults to `$TEKSCORE_LOG_LEVEL`, else info; `fmt` (`json` or `console`) to
    `$TEKSCORE_LOG_FORMAT`, else console on a terminal and json otherwise. `stdlib_too` lets
    standard-library loggers log at `level` too (else warning and above). `cache` keeps each
    logger's configuration after its first use (faster; for processes that configure once).
    """
    numeric = level_number(level or os.environ.get(LEVEL_ENV) or "info")
    fmt = (fmt or os.environ.get(FORMAT_ENV) or "").lower()
    if fmt not in ("json", "console"):
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=cache,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric if stdlib_too else max(numeric, logging.WARNING))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True
