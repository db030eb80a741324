"""Prometheus metrics of the scheduler: jobs by state, transitions, API latency.

One registry per app (built in `create_app`), an ASGI middleware timing every request by its
route template. No I/O except the scrape, which counts jobs in the store.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    """The scheduler's metric families."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Gauge("tekscore_jobs", "Jobs by state.", ["state"], registry=self.registry)
        self.transitions = Counter(
            "tekscore_job_transitions_total",
            "Job state transitions.",
            ["event", "state"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tekscore_api_request_seconds",
            "API request latency.",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )


class LatencyMiddleware:
    """Pure ASGI middleware (cheap on the hot path) observing request latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, str], Any] = {}  # labelled histograms, looked up once

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            key = (scope["method"], getattr(route, "path", "unmatched"), str(status))
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self.metrics.latency.labels(*key)
            child.observe(time.perf_counter() - start)
