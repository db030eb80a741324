"""Prometheus metrics of a flow and the small app serving `/metrics` and `/healthz`.

The registry and metrics are made per flow by `FlowMetrics()` (never at import). Serving is done
by `httpserver.RunningServer`. Metrics: `tekscore_flow_records_{in,out,failed,filtered}_total`,
`tekscore_flow_batch_seconds` (histogram of one micro-batch from read to sink), and
`tekscore_flow_batches_in_flight`; all labelled with `flow`.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scoring_flow.items import Counters


class FlowMetrics:
    """The metrics of one flow in their own registry."""

    def __init__(self, flow: str) -> None:
        self.flow = flow
        self.registry = CollectorRegistry()
        names = ("in", "out", "failed", "filtered")
        self._counters = {
            n: Counter(
                f"tekscore_flow_records_{n}",
                f"Input records {n} (see docs/scoring-flow.md).",
                ["flow"],
                registry=self.registry,
            ).labels(flow)
            for n in names
        }
        self.batch_seconds = Histogram(
            "tekscore_flow_batch_seconds",
            "Seconds from reading a micro-batch to the sink holding it.",
            ["flow"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        ).labels(flow)
        self.in_flight = Gauge(
            "tekscore_flow_batches_in_flight",
            "Micro-batches being processed.",
            ["flow"],
            registry=self.registry,
        ).labels(flow)
        self._seen = Counters()

    def update(self, counters: Counters) -> None:
        """Bring the Prometheus counters up to `counters`."""
        for name, value in counters.as_dict().items():
            short = name.removeprefix("records_")
            delta = value - getattr(self._seen, name)
            if delta > 0:
                self._counters[short].inc(delta)
                setattr(self._seen, name, value)

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)


def metrics_app(metrics: FlowMetrics, *, healthy: Callable[[], bool]) -> Starlette:
    """`GET /metrics` and `GET /healthz` (200 while the flow loop is alive, else 503)."""

    async def get_metrics(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def get_health(request: Request) -> Response:
        ok = healthy()
        return JSONResponse({"status": "ok" if ok else "failing"}, status_code=200 if ok else 503)

    return Starlette(
        routes=[Route("/metrics", get_metrics), Route("/healthz", get_health)],
    )
