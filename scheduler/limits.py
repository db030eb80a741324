"""The limits of one request and one job, and pre-processing a request within them.

Pure (pre-processing is CPU only; the access rules resolve paths on the file system). The
server's settings give each limit and the setting that changes it (`JobLimits.from_settings`);
`render_within` pre-processes a start or validate request with the documents limit and the
server's access rules (`ir.access`: data roots, code sources, bind addresses, secrets), then
checks the job it describes: flows, shards, replicas and processes. Every limit passed is one
422 issue naming the limit and its setting. The body-size limit is applied before any of this,
by the app (413). docs/security.md has the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ir import Access, IRValidationError, Issue, JobBundle, Rendered, render_bundle
from ir.limits import Limit
from scheduler.config import Settings

_WHERE = "<job>"


@dataclass(frozen=True)
class JobLimits:
    """What one request and one job may hold, and what the job may touch."""

    documents: Limit
    flows: Limit
    shards: Limit
    replicas: Limit
    processes: Limit
    server_processes: Limit | None = None
    access: Access | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> JobLimits:
        return cls(
            documents=Limit(settings.max_documents, "TEKSCORE_MAX_DOCUMENTS"),
            flows=Limit(settings.max_flows, "TEKSCORE_MAX_FLOWS"),
            shards=Limit(settings.max_shards, "TEKSCORE_MAX_SHARDS"),
            replicas=Limit(settings.max_replicas, "TEKSCORE_MAX_REPLICAS"),
            processes=Limit(settings.max_processes, "TEKSCORE_MAX_PROCESSES"),
            # the local backend runs jobs' processes on this machine, within one budget
            server_processes=Limit(settings.max_server_processes, "TEKSCORE_MAX_SERVER_PROCESSES")
            if settings.backend == "local"
            else None,
            access=settings.access(),
        )


def job_processes(values: dict[str, Any]) -> int:
    """The processes (pods on Kubernetes) a job of this values file runs: each flow's shards
    (batch) or replicas (streaming), each scoring service's replicas (but external ones)."""
    flows: list[dict[str, Any]] = values.get("scoringFlows", [])
    services: list[dict[str, Any]] = values.get("scoringServices", [])
    count = 0
    for flow in flows:
        count += int(flow.get("shards", 1) if flow["mode"] == "batch" else flow.get("replicas", 1))
    for service in services:
        count += int(service.get("replicas", 1)) if service["runtime"] != "external" else 0
    return count


def job_issues(values: dict[str, Any], limits: JobLimits) -> list[Issue]:
    """Every limit the job of a values file passes (empty when it fits)."""
    issues: list[Issue] = []
    flows: list[dict[str, Any]] = values.get("scoringFlows", [])
    services: list[dict[str, Any]] = values.get("scoringServices", [])
    if len(flows) > limits.flows.value:
        issues.append(
            Issue(_WHERE, None, ("scoringFlows",), limits.flows.message("flows", len(flows)))
        )
    for flow in flows:
        name, shards, replicas = flow["name"], flow.get("shards", 1), flow.get("replicas", 1)
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
        if replicas > limits.replicas.value:
            where = ("scoringServices", service["name"], "replicas")
            issues.append(Issue(_WHERE, None, where, limits.replicas.message("replicas", replicas)))
    processes = job_processes(values)
    if processes > limits.processes.value:
        issues.append(
            Issue(_WHERE, None, (), limits.processes.message("processes of the job", processes))
        )
    server = limits.server_processes
    if server is not None and processes > server.value:  # it could never start
        issues.append(
            Issue(
                _WHERE,
                None,
                (),
                server.message("processes the server runs at once for all its jobs", processes),
            )
        )
    return issues


def render_within(bundle: JobBundle, limits: JobLimits | None) -> Rendered:
    """Pre-process a request's bundle within the limits; `IRValidationError` with every problem
    (of the IR, or every limit passed). Without limits, as `render_bundle`."""
    if limits is None:
        return render_bundle(bundle)
    rendered = render_bundle(bundle, max_documents=limits.documents, access=limits.access)
    issues = job_issues(rendered.values, limits)
    if issues:
        raise IRValidationError(issues)
    return rendered
