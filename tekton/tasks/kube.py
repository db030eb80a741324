"""The Kubernetes side of the tasks: the wait task's watch over a job's pods and Jobs, and the
job's callback Secret.

Two halves:

- **pure decisions** on objects exactly as the apiserver serves them (JSON dicts, camelCase):
  `classify_pod`, `classify_job`, `all_batch_complete`, `decide`. No I/O;
- **I/O** with `kubernetes.aio` (in-cluster config, else kubeconfig): `connect`, the callback
  Secret (`read_callback_token`, `delete_callback_secret`) and `ReleaseWatcher`, which lists and
  watches the pods and Jobs labelled `tekscore.dev/job=<id>` (resourceVersion kept, re-listed on
  410 Gone) and retries transient API errors (5xx, 429, connection errors) with tenacity.

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
import json
import os
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from tenacity import AsyncRetrying, RetryCallState

from common.retry import Policy
from common.task_errors import TaskFailed

# `kubernetes.aio` is imported inside the I/O functions: importing it takes about a second and
# the CLI registers these commands on every `tekscore` start.

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
    """A real error of the release: the job fails with `reason` and `message`."""

    reason: str
    message: str

    def error(self) -> TaskFailed:
        return TaskFailed(self.reason, self.message)


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


def name_of(obj: Obj) -> str:
    return str(_meta(obj).get("name", "?"))


def _part(pod: Obj) -> tuple[str, str]:
    """(failure reason, how to name the part) for a pod of the chart."""
    labels = _labels(pod)
    if labels.get(LABEL_COMPONENT) == COMPONENT_SERVICE:
        return "ServiceFailed", f"Scoring service {labels.get(LABEL_SERVICE, '?')!r}"
    return "FlowFailed", f"Flow {labels.get(LABEL_FLOW, '?')!r}"


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
    reason, part = _part(pod)
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
            )
        if why in CONFIG_REASONS:
            return Failure(
                reason,
                f"{part}: container {container} of {where} cannot be created: {why}"
                + (f": {detail}" if detail else "")
                + ".",
            )
        if why == CRASH_REASON:
            ended = _termination(last)
            return Failure(
                reason,
                f"{part}: container {container} of {where} is in CrashLoopBackOff "
                f"(restarted {restarts} times)"
                + (f"; last termination: {ended}" if ended else "")
                + ".",
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


def _last_failed_pod(job: Obj, pods: Iterable[Obj]) -> tuple[Obj, Obj] | None:
    """(pod, terminated state) of the most recently ended failed container of this Job's pods."""
    job_name = name_of(job)
    flow = _labels(job).get(LABEL_FLOW)
    best: tuple[str, Obj, Obj] | None = None
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
                    best = (finished, pod, ended)
    return None if best is None else (best[1], best[2])


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
    if last is not None:
        pod, ended = last
        message += f"; last failed pod {name_of(pod)}: {_termination(ended)}"
    return Failure("FlowFailed", message + ".")


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


def transient(exc: BaseException) -> bool:
    """A Kubernetes API error worth retrying: 5xx, 429, status 0 (the client could not talk to
    the apiserver), a connection problem, a timeout. The scheduler's Tekton backend uses it too."""
    import aiohttp
    from kubernetes.aio.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        status = exc.status
        return isinstance(status, int) and (status >= 500 or status in (0, 429))
    return isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | ConnectionError)


def _retrying(*, attempts: int, backoff: float, log: Any, what: str) -> AsyncRetrying:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "kubernetes api retry", what=what, attempt=state.attempt_number, error=_short(exc)
        )

    policy = Policy(
        retry_on=transient, attempts=attempts, first=backoff, longest=10.0, on_retry=before_sleep
    )
    return policy.retrying()


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    if status is not None:
        return f"{type(exc).__name__} {status} {reason or ''}".strip()
    return f"{type(exc).__name__}: {exc}"[:300]


async def connect() -> Any:
    """A `kubernetes.aio` ApiClient: the pod's service account in a cluster, else kubeconfig
    (`KUBECONFIG` or `~/.kube/config`). Raises `TaskFailed("KubernetesUnavailable")`."""
    from kubernetes.aio import client, config

    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        try:
            # KUBECONFIG read now: the library's default is frozen when it is first imported.
            await config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.environ.get("KUBECONFIG") or None,
                client_configuration=configuration,
            )
        except (config.ConfigException, OSError) as exc:
            raise TaskFailed(
                "KubernetesUnavailable",
                f"No Kubernetes configuration: not in a cluster and no usable kubeconfig ({exc}).",
            ) from exc
    return client.ApiClient(configuration)


async def read_callback_token(
    api: Any, *, namespace: str, job_id: str, attempts: int = 6, backoff: float = 0.5
) -> str:
    """The job's callback token from Secret `<job-id>-callback` (key `token`), which the scheduler
    creates with the PipelineRun. Raises `TaskFailed("InstallFailed")` when it is missing."""
    import base64

    from kubernetes.aio.client import CoreV1Api
    from kubernetes.aio.client.exceptions import ApiException

    log = structlog.get_logger("tekton.tasks.kube").bind(job_id=job_id, namespace=namespace)
    name = callback_secret_name(job_id)
    core = CoreV1Api(api)
    try:
        async for attempt in _retrying(attempts=attempts, backoff=backoff, log=log, what=name):
            with attempt:
                secret = await core.read_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise TaskFailed(
                "InstallFailed",
                f"Secret {name} (the job's callback token, created by the scheduler with the "
                f"PipelineRun) does not exist in namespace {namespace!r}.",
            ) from exc
        raise TaskFailed(
            "InstallFailed", f"Cannot read Secret {name} in namespace {namespace!r}: {_short(exc)}"
        ) from exc
    except Exception as exc:
        if transient(exc):
            raise TaskFailed(
                "KubernetesUnavailable",
                f"Cannot read Secret {name}: the Kubernetes API did not answer ({_short(exc)}).",
            ) from exc
        raise
    encoded = (secret.data or {}).get("token") or ""
    token = base64.b64decode(encoded).decode("utf-8", "replace").strip() if encoded else ""
    if not token:
        raise TaskFailed(
            "InstallFailed", f"Secret {name} in namespace {namespace!r} has no key 'token'."
        )
    log.info("callback secret found", secret=name)  # never the token itself
    return token


async def delete_callback_secret(
    api: Any, *, namespace: str, job_id: str, attempts: int = 6, backoff: float = 0.5
) -> bool:
    """Delete Secret `<job-id>-callback`; False when it did not exist. Transient errors are
    retried; what still fails raises (the caller decides whether that matters)."""
    from kubernetes.aio.client import CoreV1Api
    from kubernetes.aio.client.exceptions import ApiException

    log = structlog.get_logger("tekton.tasks.kube").bind(job_id=job_id, namespace=namespace)
    name = callback_secret_name(job_id)
    core = CoreV1Api(api)
    try:
        async for attempt in _retrying(attempts=attempts, backoff=backoff, log=log, what=name):
            with attempt:
                await core.delete_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            log.info("callback secret already gone", secret=name)
            return False
        raise
    log.info("callback secret deleted", secret=name)
    return True


async def list_with_version(
    api: Any, *, namespace: str, job_id: str, kind: Kind
) -> tuple[list[Obj], str | None]:
    """The job's pods or Jobs (label `tekscore.dev/job=<id>`, checked again here) as the
    apiserver serves them, and the list's resourceVersion."""
    from kubernetes.aio.client import BatchV1Api, CoreV1Api
    from kubernetes.aio.client.exceptions import ApiException

    selector = f"{LABEL_JOB}={job_id}"
    if kind == "pods":
        response = await CoreV1Api(api).list_namespaced_pod_without_preload_content(
            namespace, label_selector=selector
        )
    else:
        response = await BatchV1Api(api).list_namespaced_job_without_preload_content(
            namespace, label_selector=selector
        )
    async with response:
        if response.status >= 400:
            raise ApiException(status=response.status, reason=response.reason)
        body = json.loads(await response.read())
    items: list[Obj] = [obj for obj in body.get("items") or [] if ours(obj, job_id)]
    return items, (body.get("metadata") or {}).get("resourceVersion")


async def list_objects(api: Any, *, namespace: str, job_id: str, kind: Kind) -> list[Obj]:
    """The job's pods or Jobs (see `list_with_version`)."""
    items, _ = await list_with_version(api, namespace=namespace, job_id=job_id, kind=kind)
    return items


class _Relist(Exception):
    """The watch cannot resume from its resourceVersion (410 Gone, or it broke after progress)."""


class ReleaseWatcher:
    """Watch a job's pods and Jobs until `decide` says `Completed` or `Failure`.

    One list+watch loop per kind keeps a cache of the job's objects (filtered by label on the
    server and again here); every event re-runs `decide`. A watch resumes from the last
    resourceVersion when the server ends it, and re-lists on 410 Gone or after a broken stream.
    Transient API errors are retried `attempts` times in a row with exponential backoff; then
    the wait fails with `KubernetesUnavailable`.
    """

    def __init__(
        self,
        *,
        api: Any,
        namespace: str,
        job_id: str,
        attempts: int = 8,
        backoff: float = 0.5,
        watch_timeout: int = 300,
        restart_threshold: int = 3,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.job_id = job_id
        self.attempts = attempts
        self.backoff = backoff
        self.watch_timeout = watch_timeout
        self.restart_threshold = restart_threshold
        self.cache: dict[Kind, dict[str, Obj]] = {"pods": {}, "jobs": {}}
        self.listed: dict[Kind, int] = {"pods": 0, "jobs": 0}
        self._result: asyncio.Future[Decision] | None = None
        self._log: structlog.typing.FilteringBoundLogger = structlog.get_logger(
            "tekton.tasks.kube"
        ).bind(job_id=job_id, namespace=namespace)

    @property
    def selector(self) -> str:
        return f"{LABEL_JOB}={self.job_id}"

    async def wait(self) -> Completed:
        """Return when every batch Job completed; raise `TaskFailed` at the first failure."""
        self._result = asyncio.get_running_loop().create_future()
        informers = [
            asyncio.create_task(self._inform(kind), name=f"watch-{kind}")
            for kind in ("jobs", "pods")
        ]
        self._log.info("wait started", selector=self.selector)
        try:
            waited: list[asyncio.Future[Any]] = [self._result, *informers]
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
            if not self._result.done():
                for task in informers:
                    if task.done():
                        task.result()  # an informer gave up: raise its error
            decision = self._result.result()
        finally:
            for task in informers:
                task.cancel()
            await asyncio.gather(*informers, return_exceptions=True)
            if not self._result.done():
                self._result.cancel()
        if isinstance(decision, Failure):
            self._log.error("wait failed", reason=decision.reason, message=decision.message)
            raise decision.error()
        assert isinstance(decision, Completed)
        self._log.info("batch flows completed", jobs=list(decision.jobs))
        return decision

    # ------------------------------------------------------------------ cache and decision

    def _apply(self, kind: Kind, event_type: str, obj: Obj) -> None:
        name = name_of(obj)
        if event_type == "DELETED" or not ours(obj, self.job_id):
            self.cache[kind].pop(name, None)
        else:
            self.cache[kind][name] = obj

    def _evaluate(self) -> None:
        if self._result is None or self._result.done():
            return
        decision = decide(
            pods=self.cache["pods"].values(),
            jobs=self.cache["jobs"].values(),
            restart_threshold=self.restart_threshold,
        )
        if decision is not None:
            self._result.set_result(decision)

    # ------------------------------------------------------------------ list and watch

    async def _inform(self, kind: Kind) -> None:
        while True:
            try:
                async for attempt in _retrying(
                    attempts=self.attempts, backoff=self.backoff, log=self._log, what=kind
                ):
                    with attempt:
                        await self._list_and_watch(kind)
            except _Relist:
                continue
            except Exception as exc:
                if transient(exc):
                    raise TaskFailed(
                        "KubernetesUnavailable",
                        f"Cannot watch the job's {kind}: the Kubernetes API failed "
                        f"{self.attempts} times in a row ({_short(exc)}).",
                    ) from exc
                raise

    async def _list(self, kind: Kind) -> tuple[list[Obj], str | None]:
        return await list_with_version(
            self.api, namespace=self.namespace, job_id=self.job_id, kind=kind
        )

    @asynccontextmanager
    async def _watch(self, kind: Kind, version: str | None) -> AsyncIterator[Any]:
        from kubernetes.aio import watch
        from kubernetes.aio.client import BatchV1Api, CoreV1Api

        list_call = (
            CoreV1Api(self.api).list_namespaced_pod
            if kind == "pods"
            else BatchV1Api(self.api).list_namespaced_job
        )
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        # Keep the apiserver's JSON: the generated models are strict and we read a few fields.
        stream.get_return_type = lambda func: ""  # type: ignore[method-assign]
        kwargs: dict[str, Any] = {
            "label_selector": self.selector,
            "timeout_seconds": self.watch_timeout,
            "allow_watch_bookmarks": True,
            "_request_timeout": float(self.watch_timeout + 30),
        }
        if version:
            kwargs["resource_version"] = version
        try:
            yield stream.stream(list_call, self.namespace, **kwargs)  # type: ignore[no-untyped-call]
        finally:
            await stream.close()  # type: ignore[no-untyped-call]

    async def _list_and_watch(self, kind: Kind) -> None:
        from kubernetes.aio.client.exceptions import ApiException

        items, version = await self._list(kind)
        self.cache[kind] = {name_of(obj): obj for obj in items if ours(obj, self.job_id)}
        self.listed[kind] += 1
        self._log.debug("listed", kind=kind, count=len(self.cache[kind]), version=version)
        self._evaluate()
        while True:
            started = time.monotonic()
            progressed = False
            try:
                async with self._watch(kind, version) as events:
                    async for event in events:
                        event_type = event.get("type")
                        obj: Obj = event.get("raw_object") or {}
                        version = _meta(obj).get("resourceVersion") or version
                        progressed = True
                        if event_type in ("ADDED", "MODIFIED", "DELETED"):
                            self._apply(kind, str(event_type), obj)
                            self._evaluate()
            except ApiException as exc:
                if exc.status == 410:
                    self._log.info("watch expired, re-listing", kind=kind)
                    raise _Relist from exc
                if transient(exc) and (progressed or time.monotonic() - started > 30):
                    self._log.warning("watch broke, re-listing", kind=kind, error=_short(exc))
                    raise _Relist from exc
                raise
            except Exception as exc:
                if transient(exc) and (progressed or time.monotonic() - started > 30):
                    self._log.warning("watch broke, re-listing", kind=kind, error=_short(exc))
                    raise _Relist from exc
                raise
            # The server ended the watch (timeoutSeconds): resume from the last version.
