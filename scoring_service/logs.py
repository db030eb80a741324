"""Logging setup: structlog for our events, stdlib logging (uvicorn's) routed through it.

Configures process-wide logging when called (never at import time); writes to stderr.
Level from `TEKSCORE_LOG_LEVEL` (default info), format from `TEKSCORE_LOG_FORMAT`
(`json` or `console`; default console when stderr is a TTY, else json). One event per line.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Configure structlog and the stdlib root logger (uvicorn's loggers propagate to it)."""
    level_name = (level or os.environ.get("TEKSCORE_LOG_LEVEL") or "info").lower()
    numeric = _LEVELS.get(level_name, logging.INFO)
    fmt = (fmt or os.environ.get("TEKSCORE_LOG_FORMAT") or "").lower()
    if fmt not in ("json", "console"):
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
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
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
