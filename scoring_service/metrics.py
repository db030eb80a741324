"""Prometheus metrics of the scoring service, in a registry owned by the app (not global).

No I/O. Per model and endpoint: requests (by HTTP code), rows scored, errors (whole-request
and per-record), and a latency histogram. Exposed at `GET /metrics`. With `--workers N` each
worker process counts its own requests (a scrape sees the worker that answers it).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
UNKNOWN_MODEL = "_unknown"


class Metrics:
    """The collectors, created per app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tekscore_model_requests",
            "Scoring requests by model, endpoint and HTTP status code.",
            ["model", "endpoint", "code"],
            registry=self.registry,
        )
        self.rows = Counter(
            "tekscore_model_rows",
            "Records (records endpoint) or rows (infer endpoint) received for scoring.",
            ["model", "endpoint"],
            registry=self.registry,
        )
        self.errors = Counter(
            "tekscore_model_errors",
            "Errors: kind=request for a rejected request, kind=record for a failed record.",
            ["model", "endpoint", "kind"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tekscore_model_request_duration_seconds",
            "Time to answer a scoring request.",
            ["model", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ready = Gauge(
            "tekscore_model_ready",
            "1 when the model is loaded and ready, else 0.",
            ["model"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        """Labelled children per (model, endpoint, code): `labels()` costs a lock and a lookup."""

    def observe(
        self,
        model: str,
        endpoint: str,
        *,
        code: int,
        rows: int,
        record_errors: int,
        seconds: float,
    ) -> None:
        """Record one answered scoring request."""
        key = (model, endpoint, code)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(model, endpoint, str(code)),
                self.rows.labels(model, endpoint),
                self.latency.labels(model, endpoint),
            )
        requests, rows_counter, latency = children
        requests.inc()
        if rows:
            rows_counter.inc(rows)
        if code >= 400:
            self.errors.labels(model, endpoint, "request").inc()
        if record_errors:
            self.errors.labels(model, endpoint, "record").inc(record_errors)
        latency.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
