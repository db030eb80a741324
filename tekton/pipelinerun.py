"""The objects of one job on Kubernetes: its PipelineRun, IR ConfigMap and callback Secret.

Pure builders, no I/O: each function returns a plain dict ready for the Kubernetes API. The
scheduler's PipelineRun store (`scheduler.stores.kubernetes`) creates them; the label and
annotation keys below are the whole contract between the scheduler replicas and the
PipelineRun, which is the job's only record (DESIGN.md section 4, TEKTON.md).

A PipelineRun of job `j-…` (`tekton.dev/v1`):
- `pipelineRef` to the platform Pipeline (`tekscore-scoring-job`), params `job-id`, `release`
  (= the job id), `namespace`, `scheduler-url` and `chart`;
- workspace `ir` bound to the ConfigMap `<job-id>-ir` (key `job.json`, the job bundle, and
  `values.json`, the values the scheduler rendered from it);
- `taskRunTemplate.serviceAccountName` (v1 has no root `serviceAccountName`);
- `timeouts`: all `"0"` (no limit), or `pipeline` with `tasks = pipeline - finally`;
- labels `tekscore.dev/job`, `tekscore.dev/pipeline`, `app.kubernetes.io/managed-by`, and
  `tekscore.dev/idempotency` (hash of the start request's Idempotency-Key) when given;
- annotations with the job's public metadata (`tekscore.dev/name`, `labels`, `content-hash`,
  `created-at`, `body-hash`, `flows`); later the scheduler adds flow reports (`flows.<n>`) and
  the outcome (`outcome`, `outcome-reason`, `outcome-message`, `outcome-at`).

The flows' status changes as flows report, and each change is written under a **new key**,
`tekscore.dev/flows.<n>` (`n` one more than the highest on the run; `tekscore.dev/flows`, written
at start, is generation 0), with every earlier generation removed in the same patch; the highest
generation is the status. Tekton's PipelineRun reconciler writes back the annotation values it
read when a reconcile began (`updateLabelsAndAnnotations`: an Update at the newest
resourceVersion of the union of the annotations then and those it began with, tektoncd/pipeline
#5297), so a value changed during a reconcile is undone without a conflict — seen on the real
controller, a shard's completion lost. A key it never read it cannot undo: at worst it puts an
earlier generation back beside the newer one, and the next change removes it again. Every
other annotation of ours is written once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GROUP = "tekton.dev"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
PIPELINERUNS = "pipelineruns"
TASKRUNS = "taskruns"

# Labels (selectable).
LABEL_JOB = "tekscore.dev/job"
LABEL_PIPELINE = "tekscore.dev/pipeline"
LABEL_IDEMPOTENCY = "tekscore.dev/idempotency"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "tekscore"
# Labels Tekton puts on the TaskRuns of a PipelineRun (TEKTON.md).
LABEL_PIPELINERUN = "tekton.dev/pipelineRun"
LABEL_PIPELINE_TASK = "tekton.dev/pipelineTask"
LABEL_MEMBER_OF = "tekton.dev/memberOf"

# Annotations (the job's metadata, flow reports and outcome).
ANN_NAME = "tekscore.dev/name"
ANN_LABELS = "tekscore.dev/labels"
ANN_CONTENT_HASH = "tekscore.dev/content-hash"
ANN_CREATED_AT = "tekscore.dev/created-at"
ANN_BODY_HASH = "tekscore.dev/body-hash"
ANN_FLOWS = "tekscore.dev/flows"
ANN_OUTCOME = "tekscore.dev/outcome"
ANN_OUTCOME_REASON = "tekscore.dev/outcome-reason"
ANN_OUTCOME_MESSAGE = "tekscore.dev/outcome-message"
ANN_OUTCOME_AT = "tekscore.dev/outcome-at"

# The Pipeline's task names (tekton/manifests/pipeline.yaml) and the job's task names.
TASK_OF_PIPELINE_TASK = {"install": "install", "wait": "wait", "uninstall": "finally"}
# Task results a failing `tekscore task ...` writes: its reason and message (Tekton's own
# condition only says which step exited with which code)
RESULT_FAILURE_REASON = "failure-reason"
RESULT_FAILURE_MESSAGE = "failure-message"
RESULT_FAILURE_PART = "failure-part"  # flows/<name> or services/<name>
RESULT_FAILURE_LOG = "failure-log"  # the last lines of that part's container log

IR_KEY = "job.json"
VALUES_KEY = "values.json"
CONFIGMAP_BUDGET = 1_000_000
"""Bytes of data one ConfigMap may carry here (the apiserver refuses an object over 1 MiB)."""
TOKEN_KEY = "token"  # noqa: S105 (a key name, not a secret)


def ir_configmap_name(job_id: str) -> str:
    """The IR ConfigMap of a job."""
    return f"{job_id}-ir"


def callback_secret_name(job_id: str) -> str:
    """The callback-token Secret of a job (the chart's flow pods read key `token`)."""
    return f"{job_id}-callback"


def idempotency_label(key: str) -> str:
    """The label value for an Idempotency-Key: 48 hex characters of its sha256."""
    return hashlib.sha256(key.encode()).hexdigest()[:48]


def go_duration(seconds: float) -> str:
    """`seconds` as a Go duration (`1h30m0s`); `0` is `"0"` (no timeout)."""
    total = round(seconds)
    if total <= 0:
        return "0"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def timeouts(*, pipeline: float, finally_: float) -> dict[str, str]:
    """`spec.timeouts` (TEKTON.md): all `"0"` when `pipeline` is 0 (no limit), else
    `pipeline`, `finally` and `tasks = pipeline - finally` (so `pipeline >= tasks + finally`)."""
    if pipeline <= 0:
        return {"pipeline": "0", "tasks": "0", "finally": "0"}
    if not 0 < finally_ < pipeline:
        raise ValueError(
            f"the finally timeout ({finally_}s) must be positive and below the pipeline "
            f"timeout ({pipeline}s)"
        )
    return {
        "pipeline": go_duration(pipeline),
        "tasks": go_duration(pipeline - finally_),
        "finally": go_duration(finally_),
    }


def flows_key(generation: int) -> str:
    """The annotation holding generation `generation` of the flows' status."""
    return ANN_FLOWS if generation == 0 else f"{ANN_FLOWS}.{generation}"


def flows_generations(annotations: Mapping[str, str]) -> dict[int, str]:
    """The flows' status annotations on a run, by generation."""
    out: dict[int, str] = {}
    for key, value in annotations.items():
        generation = key.removeprefix(f"{ANN_FLOWS}.")
        if key == ANN_FLOWS:
            out[0] = value
        elif generation != key and generation.isdigit():
            out[int(generation)] = value
    return out


def flows_change(annotations: Mapping[str, str], doc: Mapping[str, Any]) -> dict[str, str | None]:
    """The merge-patch annotations recording `doc` as the flows' status of a run whose
    annotations are `annotations`: the next generation, every earlier one removed (None)."""
    generations = flows_generations(annotations)
    latest = max(generations, default=-1)
    change: dict[str, str | None] = {flows_key(g): None for g in generations}
    change[flows_key(latest + 1)] = _compact(doc)
    return change


def _compact(value: Mapping[str, Any]) -> str:
    """An annotation's JSON value: compact, keys sorted (the same document, the same text)."""
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """What a job's PipelineRun is built from."""

    job_id: str
    pipeline: str  # the IR pipeline name (label `tekscore.dev/pipeline`)
    namespace: str
    scheduler_url: str
    pipeline_ref: str = "tekscore-scoring-job"
    service_account: str = "tekscore-task"
    chart: str | None = None  # the Pipeline's `chart` param; its default when None
    timeouts: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None
    idempotency_key: str | None = None


def job_annotations(
    *,
    name: str | None,
    labels: Mapping[str, str],
    content_hash: str,
    created_at: str,
    body_hash: str | None,
    flows: Mapping[str, Any],
) -> dict[str, str]:
    """The job's public metadata as PipelineRun annotations (values are strings); `body_hash`
    (of a start with an Idempotency-Key) recognises a replayed start."""
    annotations = {
        ANN_LABELS: _compact(labels),
        ANN_CONTENT_HASH: content_hash,
        ANN_CREATED_AT: created_at,
        ANN_FLOWS: _compact(flows),
    }
    if body_hash is not None:
        annotations[ANN_BODY_HASH] = body_hash
    if name is not None:
        annotations[ANN_NAME] = name
    return annotations


def job_labels(*, job_id: str, pipeline: str) -> dict[str, str]:
    """The labels every object of a job carries."""
    return {LABEL_JOB: job_id, LABEL_PIPELINE: pipeline, LABEL_MANAGED_BY: MANAGED_BY}


def build_pipelinerun(spec: RunSpec) -> dict[str, Any]:
    """The job's PipelineRun (`tekton.dev/v1`), named after the job."""
    labels = job_labels(job_id=spec.job_id, pipeline=spec.pipeline)
    if spec.idempotency_key is not None:
        labels[LABEL_IDEMPOTENCY] = idempotency_label(spec.idempotency_key)
    params = [
        {"name": "job-id", "value": spec.job_id},
        {"name": "release", "value": spec.job_id},
        {"name": "namespace", "value": spec.namespace},
        {"name": "scheduler-url", "value": spec.scheduler_url},
    ]
    if spec.chart is not None:
        params.append({"name": "chart", "value": spec.chart})
    run_spec: dict[str, Any] = {
        "pipelineRef": {"name": spec.pipeline_ref},
        "params": params,
        "workspaces": [{"name": "ir", "configMap": {"name": ir_configmap_name(spec.job_id)}}],
        "taskRunTemplate": {"serviceAccountName": spec.service_account},
        "timeouts": dict(spec.timeouts or timeouts(pipeline=0, finally_=0)),
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "PipelineRun",
        "metadata": {
            "name": spec.job_id,
            "namespace": spec.namespace,
            "labels": labels,
            "annotations": dict(spec.annotations or {}),
        },
        "spec": run_spec,
    }


def build_ir_configmap(
    *, job_id: str, pipeline: str, namespace: str, bundle_json: str, values_json: str | None = None
) -> dict[str, Any]:
    """The ConfigMap `<job-id>-ir` holding the job bundle as `job.json` (no secret in it:
    the bundle is the IR, parameters, channel registry and globals, never a token) and, when
    both fit in `CONFIGMAP_BUDGET`, the values rendered from it at start as `values.json` (what
    `/values` serves; without it the scheduler renders them from the bundle)."""
    data = {IR_KEY: bundle_json}
    size = len(bundle_json.encode()) + len((values_json or "").encode())
    if values_json is not None and size <= CONFIGMAP_BUDGET:
        data[VALUES_KEY] = values_json
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ir_configmap_name(job_id),
            "namespace": namespace,
            "labels": job_labels(job_id=job_id, pipeline=pipeline),
        },
        "immutable": True,
        "data": data,
    }


def build_callback_secret(
    *, job_id: str, pipeline: str, namespace: str, token: str
) -> dict[str, Any]:
    """The Secret `<job-id>-callback` with the job's callback token under key `token`."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": callback_secret_name(job_id),
            "namespace": namespace,
            "labels": job_labels(job_id=job_id, pipeline=pipeline),
        },
        "type": "Opaque",
        "immutable": True,
        "stringData": {TOKEN_KEY: token},
    }


def owner_patch(*, name: str, uid: str) -> dict[str, Any]:
    """A merge-patch making an object owned by the PipelineRun `name` (deleted with it)."""
    return {
        "metadata": {
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "PipelineRun",
                    "name": name,
                    "uid": uid,
                    "controller": False,
                    "blockOwnerDeletion": False,
                }
            ]
        }
    }


def cancel_patch() -> dict[str, Any]:
    """Cancel a PipelineRun and still run its finally task (TEKTON.md)."""
    return {"spec": {"status": "CancelledRunFinally"}}


def cancel_taskrun_patch(message: str) -> dict[str, Any]:
    """Cancel one TaskRun (the wait task): it ends False/TaskRunCancelled, finally runs."""
    return {"spec": {"status": "TaskRunCancelled", "statusMessage": message}}


# -- where a job's parts answer (the names of the scoring-pipeline chart's Services) -----------


def service_object_name(job_id: str, service: str) -> str:
    """The chart's `scoring-pipeline.serviceName`: `<job>-<service>`, cut to 63, no trailing -."""
    return f"{job_id}-{service}"[:63].rstrip("-")


def flow_object_name(job_id: str, flow: str) -> str:
    """The chart's `scoring-pipeline.flowName`: `<job>-flow-<flow>`; past 63 characters, cut to
    54 (no trailing -), then `-` and 8 hex of the full name's sha256."""
    full = f"{job_id}-flow-{flow}"
    if len(full) <= 63:
        return full
    return f"{full[:54].rstrip('-')}-{hashlib.sha256(full.encode()).hexdigest()[:8]}"


def endpoints(
    values: Mapping[str, Any], *, job_id: str, namespace: str
) -> tuple[dict[str, str], dict[str, str]]:
    """(service -> base URL, http-source flow -> POST URL) of a job installed by the chart: the
    cluster DNS names of its Services, `http://<name>.<namespace>.svc:<port>`."""
    services = {
        str(s["name"]): (
            f"http://{service_object_name(job_id, str(s['name']))}.{namespace}.svc:{s['port']}"
        )
        for s in values.get("scoringServices") or []
        if s.get("runtime") != "external" and s.get("port")
    }
    flows = {}
    for f in values.get("scoringFlows") or []:
        source = f.get("source") or {}
        if source.get("type") != "http":
            continue
        config = source.get("config") or {}
        host = f"{flow_object_name(job_id, str(f['name']))}.{namespace}.svc"
        flows[str(f["name"])] = (
            f"http://{host}:{config.get('port') or 8080}{config.get('path') or '/score'}"
        )
    return services, flows
