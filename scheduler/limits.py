"""The limits of one request and one job, and pre-processing a request within them.

Pure (pre-processing is CPU only). The server's settings give each limit and the setting that
changes it (`JobLimits.from_settings`); `render_within` pre-processes a start or validate
request with the documents limit, then checks the job it describes: flows, shards, replicas and
processes. Every limit passed is one 422 issue naming the limit and its setting. The body-size
limit is applied before any of this, by the app (413). docs/security.md has the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ir import IRValidationError, Issue, JobBundle, Rendered, render_bundle
from ir.limits import Limit
from scheduler.config import Settings

_WHERE = "<job>"


@dataclass(frozen=True)
class JobLimits:
    """What one request and one job may hold."""

    documents: Limit
    flows: Limit
    shards: Limit
    replicas: Limit
    processes: Limit

    @classmethod
    def from_settings(cls, settings: Settings) -> JobLimits:
        return cls(
            documents=Limit(settings.max_documents, "TEKSCORE_MAX_DOCUMENTS"),
            flows=Limit(settings.max_flows, "TEKSCORE_MAX_FLOWS"),
            shards=Limit(settings.max_shards, "TEKSCORE_MAX_SHARDS"),
            replicas=Limit(settings.max_replicas, "TEKSCORE_MAX_REPLICAS"),
            processes=Limit(settings.max_processes, "TEKSCORE_MAX_PROCESSES"),
        )


def job_issues(values: dict[str, Any], limits: JobLimits) -> list[Issue]:
    """Every limit the job of a values file passes (empty when it fits)."""
    issues: list[Issue] = []
    flows: list[dict[str, Any]] = values.get("scoringFlows", [])
    services: list[dict[str, Any]] = values.get("scoringServices", [])
    if len(flows) > limits.flows.value:
        issues.append(
            Issue(_WHERE, None, ("scoringFlows",), limits.flows.message("flows", len(flows)))
        )
    processes = 0
    for flow in flows:
        name, shards, replicas = flow["name"], flow.get("shards", 1), flow.get("replicas", 1)
        processes += shards if flow["mode"] == "batch" else replicas
        if shards > limits.shards.value:
            where = ("scoringFlows", name, "shards")
            issues.append(Issue(_WHERE, None, where, limits.shards.message("shards", shards)))
        if replicas > limits.replicas.value:
            where = ("scoringFlows", name, "replicas")
            issues.append(Issue(_WHERE, None, where, limits.replicas.message("replicas", replicas)))
    for service in services:
        if service["runtime"] == "external":
            continue
        replicas = service.get("replicas", 1)
        processes += replicas
        if replicas > limits.replicas.value:
            where = ("scoringServices", service["name"], "replicas")
            issues.append(Issue(_WHERE, None, where, limits.replicas.message("replicas", replicas)))
    if processes > limits.processes.value:
        issues.append(
            Issue(_WHERE, None, (), limits.processes.message("processes of the job", processes))
        )
    return issues


def render_within(bundle: JobBundle, limits: JobLimits | None) -> Rendered:
    """Pre-process a request's bundle within the limits; `IRValidationError` with every problem
    (of the IR, or every limit passed). Without limits, as `render_bundle`."""
    if limits is None:
        return render_bundle(bundle)
    rendered = render_bundle(bundle, max_documents=limits.documents)
    issues = job_issues(rendered.values, limits)
    if issues:
        raise IRValidationError(issues)
    return rendered
