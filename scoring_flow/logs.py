"""The flow's log context: the job id and flow name bound to every event of the process.

No I/O (structlog itself is configured by `common.logs.configure_logging`, called by the CLI).
"""

from __future__ import annotations

import structlog


def bind(*, job_id: str, flow: str) -> None:
    """Bind the job id and flow name to every later event of this process."""
    structlog.contextvars.bind_contextvars(job_id=job_id, flow=flow)
