"""What the request handlers share: settings, the model registry and the metrics.

No I/O. One `ServiceState` per app, created by `create_app`, reached from a request with
`service_state(request)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from scoring_service.config import ServeSpec
from scoring_service.errors import PayloadTooLargeError
from scoring_service.metrics import Metrics
from scoring_service.registry import Registry
from scoring_service.workers import WorkerReadiness


@dataclass
class ServiceState:
    spec: ServeSpec
    registry: Registry
    metrics: Metrics
    workers: WorkerReadiness | None = None

    @property
    def max_body_bytes(self) -> int:
        return self.spec.settings.max_body_bytes


def service_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) past `limit` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(limit)
        chunks.append(chunk)
    return b"".join(chunks)
