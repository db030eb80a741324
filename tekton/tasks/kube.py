"""The Kubernetes side of the tasks: the wait task's watch over a job's pods and Jobs, and the
job's callback Secret.

Two halves:

- **pure decisions** on objects exactly as the apiserver serves them (JSON dicts, camelCase):
  `classify_pod`, `classify_job`, `all_batch_complete`, `decide`. No I/O;
- **I/O** through the one Kubernetes client (`tekton.kube`): `task_client`, the callback Secret
  (`read_callback_token`, `delete_callback_secret`) and `ReleaseWatcher`, which keeps the pods
  and Jobs labelled `tekscore.dev/job=<id>` with two `tekton.kube.Watcher`s (resourceVersion
  kept, re-listed on 410 Gone) whose calls are retried on transient API errors (5xx, 429,
  connection errors).

What counts as a failure (`decide`), the first one seen wins:

- a container waiting with `CrashLoopBackOff`, `ImagePullBackOff`, `ErrImagePull`,
  `InvalidImageName`, `CreateContainerConfigError` or `CreateContainerError`;
- a scoring-service container that terminated with an error `restart_threshold` times (a model
  that does not load in its memory limit, a service that dies while serving);
- a batch flow's Job with condition `Failed=True` (or `FailureTarget=True`), with the last failed
  pod's termination reason and message.

Success: every batch flow's Job has `Complete=True` (a release without batch flows never
succeeds by itself; the scheduler ends that wait). Reasons are the tasks' vocabulary
(`errors.py`): `ServiceFailed` for scoring-service pods, `FlowFailed` for flows.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from common.task_errors import Part, TaskFailed, without_paths
from tekton.kube import (
    JOBS,
    PODS,
    SECRETS,
    APIError,
    ConfigError,
    Kube,
    KubeError,
    NotFound,
    Resource,
    Transient,
    Watcher,
    connect,
    name_of,
)

Obj = Mapping[str, Any]
Kind = Literal["pods", "jobs"]

LABEL_JOB = "tekscore.dev/job"
LABEL_FLOW = "tekscore.dev/flow"
LABEL_SERVICE = "tekscore.dev/service"
LABEL_COMPONENT = "app.kubernetes.io/component"
COMPONENT_SERVICE = "scoring-service"
COMPONENT_FLOW = "scoring-flow"
COMPONENT_TEST = "test"

IMAGE_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName"})
CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
CRASH_REASON = "CrashLoopBackOff"


# ---------------------------------------------------------------------------------- pure part


@dataclass(frozen=True)
class Failure:
    """A real error of the release: the job fails with `reason` and `message`; `pod` and
    `container` name the container whose log tells more (`previous`: its instance before the
    last restart, for a crashed one)."""

    reason: str
    message: str
    part: Part | None = None  # the service or flow that failed
    pod: str | None = None
    container: str | None = None
    previous: bool = False

    def error(self, log_tail: str | None = None) -> TaskFailed:
        return TaskFailed(self.reason, self.message, self.part, log_tail)


@dataclass(frozen=True)
class Completed:
    """Every batch flow's Job completed."""

    jobs: tuple[str, ...]


Decision = Failure | Completed | None


def _meta(obj: Obj) -> Obj:
    meta: Obj = obj.get("metadata") or {}
    return meta


def _labels(obj: Obj) -> Obj:
    labels: Obj = _meta(obj).get("labels") or {}
    return labels


def _part(pod: Obj) -> tuple[str, str, Part]:
    """(failure reason, how to name the part, the part) for a pod of the chart."""
    labels = _labels(pod)
    if labels.get(LABEL_COMPONENT) == COMPONENT_SERVICE:
        service = str(labels.get(LABEL_SERVICE, "?"))
        return "ServiceFailed", f"Scoring service {service!r}", ("service", service)
    flow = str(labels.get(LABEL_FLOW, "?"))
    return "FlowFailed", f"Flow {flow!r}", ("flow", flow)


def _termination(terminated: Obj | None) -> str:
    """`exit code 1 (Error): message` of a `terminated` container state, or ``""``."""
    if not terminated:
        return ""
    text = f"exit code {terminated.get('exitCode', '?')}"
    if terminated.get("reason"):
        text += f" ({terminated['reason']})"
    message = " ".join(str(terminated.get("message") or "").split())
    return f"{text}: {message}" if message else text


def _statuses(pod: Obj) -> list[Obj]:
    status: Obj = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def classify_pod(pod: Obj, *, restart_threshold: int = 3) -> Failure | None:
    """The failure a pod shows, or None while it looks healthy (or is not ours to judge).

    Ignored: pods being deleted, the `helm test` pod, and pods that merely failed (a batch flow's
    failed attempt is judged by its Job, an evicted Deployment pod is replaced).
    """
    meta = _meta(pod)
    if meta.get("deletionTimestamp") or _labels(pod).get(LABEL_COMPONENT) == COMPONENT_TEST:
        return None
    reason, part, which = _part(pod)
    where = f"pod {name_of(pod)}"
    for status in _statuses(pod):
        container = status.get("name", "?")
        state: Obj = status.get("state") or {}
        waiting: Obj = state.get("waiting") or {}
        last: Obj = (status.get("lastState") or {}).get("terminated") or {}
        why = waiting.get("reason")
        detail = " ".join(str(waiting.get("message") or "").split())
        restarts = int(status.get("restartCount") or 0)
        if why in IMAGE_REASONS:
            return Failure(
                reason,
                f"{part}: container {container} of {where} cannot pull image "
                f"{status.get('image', '?')}: {why}" + (f": {detail}" if detail else "") + ".",
                which,
            )
        if why in CONFIG_REASONS:
            return Failure(
                reason,
                f"{part}: container {container} of {where} cannot be created: {why}"
                + (f": {detail}" if detail else "")
                + ".",
                which,
            )
        if why == CRASH_REASON:
            ended = _termination(last)
            return Failure(
                reason,
                f"{part}: container {container} of {where} is in CrashLoopBackOff "
                f"(restarted {restarts} times)"
                + (f"; last termination: {ended}" if ended else "")
                + ".",
                which,
                pod=name_of(pod),
                container=container,
                previous=True,
            )
        if (
            reason == "ServiceFailed"
            and restarts >= restart_threshold
            and last
            and last.get("exitCode") != 0
        ):
            return Failure(
                reason,
                f"{part}: container {container} of {where} terminated with an error "
                f"{restarts} times (its models may not load); last termination: "
                f"{_termination(last)}.",
                which,
                pod=name_of(pod),
                container=container,
                previous=True,
            )
    return None


def condition(obj: Obj, kind: str) -> Obj | None:
    """The status condition of this type when its status is "True"."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            found: Obj = cond
            return found
    return None


def is_batch_job(job: Obj) -> bool:
    """A batch flow's Job of the chart (component scoring-flow; `helm test` pods are no Jobs)."""
    return bool(_labels(job).get(LABEL_COMPONENT, COMPONENT_FLOW) == COMPONENT_FLOW)


def _last_failed_pod(job: Obj, pods: Iterable[Obj]) -> tuple[Obj, Obj, str] | None:
    """(pod, terminated state, container name) of the most recently ended failed container of
    this Job's pods."""
    job_name = name_of(job)
    flow = _labels(job).get(LABEL_FLOW)
    best: tuple[str, Obj, Obj, str] | None = None
    for pod in pods:
        labels = _labels(pod)
        owned = job_name in (labels.get("batch.kubernetes.io/job-name"), labels.get("job-name"))
        if not owned and (flow is None or labels.get(LABEL_FLOW) != flow):
            continue
        for status in _statuses(pod):
            ended: Obj = (status.get("state") or {}).get("terminated") or {}
            if ended and ended.get("exitCode") != 0:
                finished = str(ended.get("finishedAt") or "")
                if best is None or finished >= best[0]:
                    best = (finished, pod, ended, str(status.get("name", "?")))
    return None if best is None else (best[1], best[2], best[3])


def classify_job(job: Obj, pods: Iterable[Obj] = ()) -> Failure | None:
    """`FlowFailed` for a Job with `Failed=True` (or `FailureTarget=True`), else None."""
    failed = condition(job, "Failed") or condition(job, "FailureTarget")
    if failed is None:
        return None
    flow = _labels(job).get(LABEL_FLOW, "?")
    why = failed.get("reason") or "Failed"
    detail = " ".join(str(failed.get("message") or "").split())
    message = f"Flow {flow!r}: Job {name_of(job)} failed: {why}" + (f": {detail}" if detail else "")
    last = _last_failed_pod(job, pods)
    if last is None:
        return Failure("FlowFailed", message + ".", ("flow", str(flow)))
    pod, ended, container = last
    message += f"; last failed pod {name_of(pod)}: {_termination(ended)}"
    return Failure(
        "FlowFailed", message + ".", ("flow", str(flow)), pod=name_of(pod), container=container
    )


def all_batch_complete(jobs: Iterable[Obj]) -> bool:
    """True when there is at least one batch flow Job and every one has `Complete=True`."""
    batch = [job for job in jobs if is_batch_job(job)]
    return bool(batch) and all(condition(job, "Complete") is not None for job in batch)


def decide(*, pods: Iterable[Obj], jobs: Iterable[Obj], restart_threshold: int = 3) -> Decision:
    """The first failure among Jobs and pods (sorted by name), else `Completed` when every batch
    Job completed, else None (keep waiting)."""
    pods = sorted(pods, key=name_of)
    jobs = sorted(jobs, key=name_of)
    for job in jobs:
        failure = classify_job(job, pods)
        if failure is not None:
            return failure
    for pod in pods:
        failure = classify_pod(pod, restart_threshold=restart_threshold)
        if failure is not None:
            return failure
    if all_batch_complete(jobs):
        return Completed(tuple(name_of(job) for job in jobs if is_batch_job(job)))
    return None


def ours(obj: Obj, job_id: str) -> bool:
    """The object carries `tekscore.dev/job=<job_id>` (checked again client-side)."""
    return _labels(obj).get(LABEL_JOB) == job_id


def callback_secret_name(job_id: str) -> str:
    """The Secret holding the job's callback token (key `token`), read by the chart's flows."""
    return f"{job_id}-callback"


# ---------------------------------------------------------------------------------- I/O part


async def task_client() -> Kube:
    """The tasks' Kubernetes client (`tekton.kube.connect`: the pod's service account in a
    cluster, else kubeconfig). Raises `TaskFailed("KubernetesUnavailable")` without either."""
    try:
        return await connect()
    except ConfigError as exc:
        raise TaskFailed(
            "KubernetesUnavailable",
            f"No Kubernetes configuration: not in a cluster and no usable kubeconfig ({exc}).",
        ) from exc


async def read_callback_token(
    kube: Kube, *, namespace: str, job_id: str, attempts: int = 6, backoff: float = 0.5
) -> str:
    """The job's callback token from Secret `<job-id>-callback` (key `token`), which the scheduler
    creates with the PipelineRun. Raises `TaskFailed("InstallFailed")` when it is missing."""
    log = structlog.get_logger("tekton.tasks.kube").bind(job_id=job_id, namespace=namespace)
    name = callback_secret_name(job_id)
    try:
        secret = await kube.retrying(attempts=attempts, first=backoff).get(SECRETS, namespace, name)
    except NotFound as exc:
        raise TaskFailed(
            "InstallFailed",
            f"Secret {name} (the job's callback token, created by the scheduler with the "
            f"PipelineRun) does not exist in namespace {namespace!r}.",
        ) from exc
    except Transient as exc:
        raise TaskFailed(
            "KubernetesUnavailable",
            f"Cannot read Secret {name}: the Kubernetes API did not answer ({exc}).",
        ) from exc
    except APIError as exc:
        raise TaskFailed(
            "InstallFailed", f"Cannot read Secret {name} in namespace {namespace!r}: {exc}"
        ) from exc
    encoded = (secret.get("data") or {}).get("token") or ""
    token = base64.b64decode(encoded).decode("utf-8", "replace").strip() if encoded else ""
    if not token:
        raise TaskFailed(
            "InstallFailed", f"Secret {name} in namespace {namespace!r} has no key 'token'."
        )
    log.info("callback secret found", secret=name)  # never the token itself
    return token


async def delete_callback_secret(
    kube: Kube, *, namespace: str, job_id: str, attempts: int = 6, backoff: float = 0.5
) -> bool:
    """Delete Secret `<job-id>-callback`; False when it did not exist. Transient errors are
    retried; what still fails raises (the caller decides whether that matters)."""
    log = structlog.get_logger("tekton.tasks.kube").bind(job_id=job_id, namespace=namespace)
    name = callback_secret_name(job_id)
    try:
        await kube.retrying(attempts=attempts, first=backoff).delete(SECRETS, namespace, name)
    except NotFound:
        log.info("callback secret already gone", secret=name)
        return False
    log.info("callback secret deleted", secret=name)
    return True


RESOURCES: dict[Kind, Resource] = {"pods": PODS, "jobs": JOBS}


async def list_objects(kube: Kube, *, namespace: str, job_id: str, kind: Kind) -> list[Obj]:
    """The job's pods or Jobs (label `tekscore.dev/job=<id>`, checked again here) as the
    apiserver serves them."""
    items, _ = await kube.list(RESOURCES[kind], namespace, selector=f"{LABEL_JOB}={job_id}")
    return [obj for obj in items if ours(obj, job_id)]


LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 1000
"""What a failure keeps of its container's log: Tekton holds a step's results in its termination
message, 4096 bytes in all (`tekton.cli.write_failure_results` shares them out)."""


def tail_of(log: str, *, limit: int = LOG_TAIL_BYTES) -> str | None:
    """The last whole lines of `log` within `limit` bytes, without the server's paths."""
    lines = without_paths(log).rstrip("\n").splitlines()
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        size += len(line.encode()) + 1
        if size > limit:
            break
        kept.append(line)
    return "\n".join(reversed(kept)) or None


async def failure_error(kube: Kube, namespace: str, failure: Failure) -> TaskFailed:
    """`failure` as the task's error, with the failing container's log tail when it has one and
    the log can be read (best effort: a log that cannot be read leaves the tail out)."""
    if failure.pod is None or failure.container is None:
        return failure.error()
    try:
        log = await kube.pod_log(
            namespace,
            failure.pod,
            container=failure.container,
            tail_lines=LOG_TAIL_LINES,
            previous=failure.previous,
        )
    except KubeError as exc:
        structlog.get_logger("tekton.tasks.kube").warning(
            "cannot read the failed container's log", pod=failure.pod, error=str(exc)
        )
        return failure.error()
    return failure.error(tail_of(log))


class ReleaseWatcher:
    """Watch a job's pods and Jobs until `decide` says `Completed` or `Failure`.

    One `tekton.kube.Watcher` per kind keeps the job's objects (filtered by label on the server
    and again here); every change re-runs `decide`. Transient API errors are retried `attempts`
    times in a row with exponential backoff (from `backoff` seconds); then the wait fails with
    `KubernetesUnavailable`.
    """

    def __init__(
        self,
        *,
        kube: Kube,
        namespace: str,
        job_id: str,
        attempts: int = 8,
        backoff: float = 0.5,
        watch_timeout: int = 300,
        restart_threshold: int = 3,
    ) -> None:
        self.namespace = namespace
        self.job_id = job_id
        self.kube = kube
        self.attempts = attempts
        self.restart_threshold = restart_threshold
        client = kube.retrying(attempts=attempts, first=backoff)
        self.watchers: dict[Kind, Watcher] = {
            kind: Watcher(
                client,
                RESOURCES[kind],
                namespace,
                selector=self.selector,
                keep=lambda obj: ours(obj, job_id),
                on_change=self._evaluate,
                timeout=watch_timeout,
            )
            for kind in ("jobs", "pods")
        }
        self._result: asyncio.Future[Decision] | None = None
        self._log: structlog.typing.FilteringBoundLogger = structlog.get_logger(
            "tekton.tasks.kube"
        ).bind(job_id=job_id, namespace=namespace)

    @property
    def selector(self) -> str:
        return f"{LABEL_JOB}={self.job_id}"

    @property
    def listed(self) -> dict[Kind, int]:
        """How often each kind was listed (once, plus once per re-list)."""
        return {kind: watcher.lists for kind, watcher in self.watchers.items()}

    async def wait(self) -> Completed:
        """Return when every batch Job completed; raise `TaskFailed` at the first failure."""
        self._result = asyncio.get_running_loop().create_future()
        informers = {
            kind: asyncio.create_task(watcher.run(), name=f"watch-{kind}")
            for kind, watcher in self.watchers.items()
        }
        self._log.info("wait started", selector=self.selector)
        try:
            waited: list[asyncio.Future[Any]] = [self._result, *informers.values()]
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
            if not self._result.done():
                for kind, task in informers.items():
                    if task.done():
                        self._gave_up(kind, task)
            decision = self._result.result()
        finally:
            for task in informers.values():
                task.cancel()
            await asyncio.gather(*informers.values(), return_exceptions=True)
            if not self._result.done():
                self._result.cancel()
        if isinstance(decision, Failure):
            self._log.error("wait failed", reason=decision.reason, message=decision.message)
            raise await failure_error(self.kube, self.namespace, decision)
        assert isinstance(decision, Completed)
        self._log.info("batch flows completed", jobs=list(decision.jobs))
        return decision

    def _gave_up(self, kind: Kind, task: asyncio.Task[Any]) -> None:
        """A watcher that stopped: raise its error (a transient one as `TaskFailed`)."""
        exc = task.exception()
        if isinstance(exc, Transient):
            raise TaskFailed(
                "KubernetesUnavailable",
                f"Cannot watch the job's {kind}: the Kubernetes API failed "
                f"{self.attempts} times in a row ({exc}).",
            ) from exc
        if exc is not None:
            raise exc

    def _evaluate(self) -> None:
        if self._result is None or self._result.done():
            return
        decision = decide(
            pods=self.watchers["pods"].objects.values(),
            jobs=self.watchers["jobs"].objects.values(),
            restart_threshold=self.restart_threshold,
        )
        if decision is not None:
            self._result.set_result(decision)
