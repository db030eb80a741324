"""Pre-processing: IR documents in, one deterministic Helm values tree out.

Pure, no I/O (loading is `ir.loader`). The steps, in the order of DESIGN.md section 2, each its
own function and module: collect (index, membership) -> `lookup_channels` -> `apply_parameters`
-> `merge_definitions` + `assemble` -> `apply_globals` -> `with_hash`. Problems of every step
are gathered and raised together as one `IRValidationError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import ValidationError

from ir.access import Access, access_issues
from ir.assemble import assemble
from ir.collect import Entry, Where, absolute, collect
from ir.errors import IRValidationError, Issue
from ir.globals import apply_globals, check_git_sources, local_globals
from ir.loader import SourceDoc
from ir.lookup import lookup_channels, resolve_paths
from ir.merge import merge_definitions
from ir.parameters import apply_parameters, resolve_parameters
from ir.perf import paused_gc
from ir.render import to_yaml, with_hash
from ir.values import GlobalValues, JobValues, Values


@dataclass(frozen=True)
class JobInfo:
    """The job a values file is rendered for; `id` defaults to the pipeline's name
    (`j-<name>` when the name starts with a digit)."""

    id: str | None = None
    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rendered:
    """The result of pre-processing: the values tree, its YAML text and its hash. The text is
    made when first asked for (`tekscore render`): a start request never needs it, and dumping
    the YAML was about 30 % of a start's pre-processing."""

    values: dict[str, Any]

    @cached_property
    def text(self) -> str:
        return to_yaml(self.values)

    @property
    def content_hash(self) -> str:
        return str(self.values["contentHash"])

    @property
    def pipeline(self) -> str:
        return str(self.values["job"]["pipeline"])

    def summary(self) -> str:
        """One line: pipeline, counts of services and flows by mode, hash prefix."""
        flows = self.values["scoringFlows"]
        batch = sum(1 for f in flows if f["mode"] == "batch")
        return (
            f"pipeline {self.pipeline}: {len(self.values['scoringServices'])} scoring service(s), "
            f"{len(flows)} scoring flow(s) ({batch} batch, {len(flows) - batch} streaming), "
            f"contentHash {self.content_hash[:12]}"
        )


def default_job_id(pipeline: str) -> str:
    """The job id of a render without one: the pipeline's name, made to start with a letter."""
    return pipeline if pipeline[:1].isalpha() else f"j-{pipeline}"[:63].rstrip("-")


def registry_entries(docs: Sequence[SourceDoc]) -> list[Entry]:
    """The channel registry's documents as lookup entries (relative paths made absolute)."""
    return [
        Entry(
            "DataChannel",
            d.name,
            absolute("DataChannel", d.doc.spec, d.base_dir),
            Where(d, ("spec",)),
        )
        for d in docs
        if d.kind == "DataChannel"
    ]


def preprocess(
    docs: Sequence[SourceDoc],
    *,
    parameters: Mapping[str, Any] | None = None,
    registry: Sequence[SourceDoc] = (),
    globals_: GlobalValues | None = None,
    job: JobInfo | None = None,
    access: Access | None = None,
) -> Rendered:
    """Run every pre-processing step; raise `IRValidationError` listing every problem. With
    `access`, every file, code URI, bind address and secret the job would touch is checked
    against the server's rules (`ir.access`)."""
    with paused_gc():
        return _preprocess(docs, parameters, registry, globals_, job, access)


def _preprocess(
    docs: Sequence[SourceDoc],
    parameters: Mapping[str, Any] | None,
    registry: Sequence[SourceDoc],
    globals_: GlobalValues | None,
    job: JobInfo | None,
    access: Access | None,
) -> Rendered:
    collected, issues = collect(docs)
    if collected is None:
        raise IRValidationError(issues)
    flows, lookup_issues = lookup_channels(collected, registry_entries(registry))
    declared = collected.pipeline.spec.parameters
    params, param_issues = resolve_parameters(collected.pipeline, parameters or {})
    flows, ref_issues = apply_parameters(flows, params, declared)
    flows = [resolve_paths(f) for f in flows if f.ok]
    tree, merge_issues = merge_definitions(collected, flows)
    job = job or JobInfo()
    job_values: dict[str, Any] = {
        "id": job.id or default_job_id(collected.pipeline.name),
        "pipeline": collected.pipeline.name,
        "labels": dict(job.labels),
        "parameters": params,
    }
    if job.name is not None:
        job_values["name"] = job.name
    try:
        JobValues.model_validate(job_values)
    except ValidationError as exc:
        issues += [
            Issue(
                "<job>",
                None,
                tuple(e["loc"]),
                "must be a DNS-1035 label: lower-case letters, digits and '-', starting with a "
                "letter"
                if e["loc"] == ("id",)
                else str(e["msg"]),
            )
            for e in exc.errors()
        ]
    globals_ = globals_ or local_globals()
    values, assemble_issues = assemble(
        collected, tree, flows, job=job_values, runtimes=globals_.runtimes
    )
    git_issues = check_git_sources(collected.defined.get("Model", []), globals_)
    if access is not None:
        issues += access_issues(access, collected, flows, values)
    issues += lookup_issues + param_issues + ref_issues + merge_issues + assemble_issues
    issues += git_issues
    if issues:
        raise IRValidationError(issues)
    values = with_hash(apply_globals(values, globals_))
    Values.model_validate(values)  # the contract with the chart: a failure here is our bug
    return Rendered(values)
