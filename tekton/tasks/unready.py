"""Why a release is not ready, for the install task: while `helm upgrade --install --wait` waits,
the install task watches the release's pods and fails at the first real error instead of
waiting for helm's timeout, and when helm does time out it names the pods that were not ready and
why, instead of helm's `context deadline exceeded`.

Two halves:

- **pure**: `readiness_url` (the httpGet readiness probe of a pod, aimed at its Pod IP),
  `model_failure` (a scoring service's `/v2/health/ready` answer -> the models that failed to
  load, as opposed to still loading), `describe_unready` (one line per pod that is not ready);
- **I/O**: `watch_install` polls the release's pods and Jobs (`kube.list_objects`), applies the
  wait task's `kube.decide` (CrashLoopBackOff, ImagePullBackOff, a failed Job, ...) and asks every
  running but not-ready scoring service its readiness endpoint, the same one its readiness probe
  uses: a model that failed to load will never become ready, so install fails at once with
  `ServiceFailed` naming the model error. `unready_summary` is the text for a helm timeout.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

import httpx
import structlog

from tekton.kube import Kube, KubeError, Transient, name_of
from tekton.tasks import kube

Obj = Mapping[str, Any]
LOADING = "loading"


# ---------------------------------------------------------------------------------- pure part


def _ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def readiness_url(pod: Obj) -> str | None:
    """`http://<podIP>:<port><path>` of the first container's httpGet readiness probe."""
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return None
    for container in (pod.get("spec") or {}).get("containers") or []:
        get = (container.get("readinessProbe") or {}).get("httpGet")
        if not get:
            continue
        port = get.get("port")
        if not str(port).isdigit():
            named = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
            port = named.get(port)
        if port is None:
            return None
        scheme = str(get.get("scheme") or "HTTP").lower()
        return f"{scheme}://{ip}:{port}{get.get('path') or '/'}"
    return None


def model_failure(pod: Obj, status: int, body: bytes) -> kube.Failure | None:
    """A `ServiceFailed` when the service's readiness answer says a model failed to load."""
    if status != 503:
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    models = answer.get("models") if isinstance(answer, dict) else None
    if not isinstance(models, dict):
        return None
    failed = {name: str(why) for name, why in models.items() if why not in (LOADING, "ready")}
    if not failed:
        return None
    labels = (pod.get("metadata") or {}).get("labels") or {}
    service = labels.get(kube.LABEL_SERVICE, "?")
    reasons = "; ".join(f"model {name!r} failed to load: {why}" for name, why in failed.items())
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return kube.Failure(
        "ServiceFailed",
        f"Scoring service {service!r} (pod {name_of(pod)}) cannot become ready: {reasons}.",
        ("service", str(service)),
        pod=name_of(pod),
        container=str(containers[0].get("name") or "scoring-service"),
    )


def describe_unready(pods: Iterable[Obj]) -> list[str]:
    """One line per pod of the release that is neither ready nor finished."""
    lines = []
    for pod in sorted(pods, key=name_of):
        status = pod.get("status") or {}
        if _ready(pod) or status.get("phase") in ("Succeeded", "Failed"):
            continue
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if labels.get(kube.LABEL_COMPONENT) == kube.COMPONENT_TEST:
            continue
        parts = []
        for c in [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]:
            state = c.get("state") or {}
            if "waiting" in state:
                waiting = state["waiting"]
                text = f"{c.get('name')}: waiting {waiting.get('reason', '')}"
                if waiting.get("message"):
                    text += f": {' '.join(str(waiting['message']).split())}"
            elif "running" in state and not c.get("ready"):
                text = f"{c.get('name')}: running, not ready"
            else:
                continue
            if c.get("restartCount"):
                text += f" (restarted {c['restartCount']} times)"
            parts.append(text)
        if not parts:
            parts.append(f"phase {status.get('phase', 'Pending')}")
        lines.append(f"pod {name_of(pod)}: {'; '.join(parts)}")
    return lines


# ---------------------------------------------------------------------------------- I/O part


async def _service_failure(http: httpx.AsyncClient, pods: Iterable[Obj]) -> kube.Failure | None:
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if labels.get(kube.LABEL_COMPONENT) != kube.COMPONENT_SERVICE or _ready(pod):
            continue
        url = readiness_url(pod)
        if url is None:
            continue
        try:
            answer = await http.get(url, timeout=3.0)
        except httpx.HTTPError:
            continue  # not serving yet
        failure = model_failure(pod, answer.status_code, answer.content)
        if failure is not None:
            return failure
    return None


async def watch_install(
    client: Kube, *, namespace: str, job_id: str, interval: float = 2.0
) -> NoReturn:
    """Poll the release until a real error shows, then raise it as `TaskFailed` (the caller
    cancels this when helm is done)."""
    log = structlog.get_logger("tekton.tasks.unready").bind(job_id=job_id, namespace=namespace)
    async with httpx.AsyncClient(trust_env=False) as http:
        while True:
            try:
                pods = await kube.list_objects(
                    client, namespace=namespace, job_id=job_id, kind="pods"
                )
                jobs = await kube.list_objects(
                    client, namespace=namespace, job_id=job_id, kind="jobs"
                )
            except Transient as exc:
                log.warning("cannot list the release's pods", error=str(exc))
            else:
                decision = kube.decide(pods=pods, jobs=jobs)
                failure = decision if isinstance(decision, kube.Failure) else None
                failure = failure or await _service_failure(http, pods)
                if failure is not None:
                    log.error("install failed", reason=failure.reason, message=failure.message)
                    raise await kube.failure_error(client, namespace, failure)
            await asyncio.sleep(interval)


async def unready_summary(client: Kube, *, namespace: str, job_id: str) -> str:
    """`not ready: pod a: ...; pod b: ...`, or "" (best effort: errors give "")."""
    try:
        pods = await kube.list_objects(client, namespace=namespace, job_id=job_id, kind="pods")
    except KubeError:
        return ""
    lines = describe_unready(pods)
    return "not ready: " + "; ".join(lines) if lines else ""
