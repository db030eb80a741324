"""The flow's configuration: the CONFIG file (one `FlowValues`) and the runtime environment.

Reads one file (`load_flow_values`) and `os.environ` (`RuntimeSettings.from_env`); nothing else.
Environment variables (documented in docs/scoring-flow.md):

- `TEKSCORE_JOB_ID` (default `standalone`), `TEKSCORE_CALLBACK_URL` (unset: only log),
  `TEKSCORE_CALLBACK_TOKEN` (bearer token of the callbacks),
- `TEKSCORE_LOG_LEVEL` (debug|info|warning|error), `TEKSCORE_LOG_FORMAT` (json|console),
- `TEKSCORE_PROGRESS_INTERVAL` (seconds, default 2), `TEKSCORE_READY_TIMEOUT` (seconds a flow
  waits for its services, default 120), `JOB_COMPLETION_INDEX` (shard index, default 0),
- `TEKSCORE_POD_NAME` (the pod, on Kubernetes: the chart sets it) and `TEKSCORE_REPLICA_INDEX`
  (the replica's index, locally: the launcher sets it): who this process is among the flow's
  processes, in its reports.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ir.values import FlowValues, ServiceEndpoint
from scoring_flow.errors import ConfigError

LOG_LEVELS = ("debug", "info", "warning", "error")


def parse_flow_values(data: Any) -> FlowValues:
    """Validate a parsed CONFIG document into `FlowValues`, every service endpoint resolved."""
    if not isinstance(data, dict):
        raise ConfigError("the CONFIG must be a mapping (one entry of scoringFlows)")
    try:
        flow = FlowValues.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("; ".join(lines)) from exc
    for endpoint in flow.services.values():
        endpoint_url(endpoint)
    return flow


def endpoint_url(endpoint: ServiceEndpoint) -> str:
    """The base URL the flow calls a service at. A logical endpoint (a service and its port, as
    `tekscore render` writes it) must have been resolved by whoever runs the flow: the chart
    (its Service) or the local runner (a loopback port)."""
    if endpoint.url is None:
        raise ConfigError(
            f"services.{endpoint.service}: the endpoint of service {endpoint.service!r} (port "
            f"{endpoint.port}) has no url: whoever runs the flow resolves it (the chart, the "
            "local runner); to run a rendered flow by hand, give it a url"
        )
    return endpoint.url.rstrip("/")


def load_flow_values(path: Path) -> FlowValues:
    """Read CONFIG (JSON or YAML, chosen by content) and validate it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path} is neither JSON nor YAML: {exc}") from exc
    return parse_flow_values(data)


@dataclass(frozen=True, kw_only=True)
class RuntimeSettings:
    """Facts about this run that are not part of the pipeline."""

    job_id: str = "standalone"
    callback_url: str | None = None
    callback_token: str | None = None
    log_level: str = "info"
    log_format: str = "json"
    progress_interval: float = 2.0
    ready_timeout: float = 120.0
    completion_retry: float = 60.0
    shard_index: int = 0
    replica_index: int | None = None
    pod: str | None = None

    def identity(self) -> dict[str, int | str]:
        """`replica` and `pod`, those known: who this process is, in reports and records."""
        known = {"replica": self.replica_index, "pod": self.pod}
        return {k: v for k, v in known.items() if v is not None}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RuntimeSettings:
        """Read the settings from `env` (default `os.environ`), checking each value."""
        env = os.environ if env is None else env
        level = env.get("TEKSCORE_LOG_LEVEL", "info").lower()
        if level not in LOG_LEVELS:
            raise ConfigError(f"TEKSCORE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        fmt = env.get("TEKSCORE_LOG_FORMAT", "json").lower()
        if fmt not in ("json", "console"):
            raise ConfigError("TEKSCORE_LOG_FORMAT must be json or console")
        return cls(
            job_id=env.get("TEKSCORE_JOB_ID") or "standalone",
            callback_url=(env.get("TEKSCORE_CALLBACK_URL") or "").rstrip("/") or None,
            callback_token=env.get("TEKSCORE_CALLBACK_TOKEN") or None,
            log_level=level,
            log_format=fmt,
            progress_interval=_positive_float(env, "TEKSCORE_PROGRESS_INTERVAL", 2.0),
            ready_timeout=_positive_float(env, "TEKSCORE_READY_TIMEOUT", 120.0),
            completion_retry=_positive_float(env, "TEKSCORE_COMPLETION_RETRY_SECONDS", 60.0),
            shard_index=_index(env, "JOB_COMPLETION_INDEX", 0) or 0,
            replica_index=_index(env, "TEKSCORE_REPLICA_INDEX", None),
            pod=_pod(env),
        )


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive")
    return value


def _index(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name)
    if not raw:
        return default
    if not raw.isdigit():
        raise ConfigError(f"{name} must be a non-negative integer, not {raw!r}")
    return int(raw)


def _pod(env: Mapping[str, str]) -> str | None:
    raw = (env.get("TEKSCORE_POD_NAME") or "").strip()
    if len(raw) > 253 or any(not (c.isalnum() or c in "-.") for c in raw):
        raise ConfigError(f"TEKSCORE_POD_NAME must be a pod name, not {raw[:40]!r}")
    return raw or None


def summary(flow: FlowValues) -> dict[str, Any]:
    """A short, secret-free description of the flow for the `flow activated` log line."""
    return {
        "mode": flow.mode,
        "source": flow.source.type,
        "sink": flow.sink.type,
        "dead_letter": flow.dead_letter.type if flow.dead_letter else None,
        "steps": [s.name or s.type for s in flow.steps],
        "services": sorted(flow.services),
        "batch_size": flow.batch_size,
        "concurrency": flow.concurrency,
        "shards": flow.shards,
    }
