"""structlog set-up for the flow: one event per line (JSON or console), job and flow bound.

Configures the process-wide structlog and stdlib logging when `configure` is called (by the CLI),
never at import. Log lines go to stderr.
"""

from __future__ import annotations

import logging
import sys

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(*, level: str, fmt: str) -> None:
    """Set up structlog (and quiet chatty libraries) for one flow process."""
    numeric = _LEVELS.get(level, logging.INFO)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, force=True)
    for noisy in ("aiokafka", "botocore", "boto3", "urllib3", "httpx", "uvicorn"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


def bind(*, job_id: str, flow: str) -> None:
    """Bind the job id and flow name to every later event of this process."""
    structlog.contextvars.bind_contextvars(job_id=job_id, flow=flow)
