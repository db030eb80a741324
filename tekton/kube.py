"""The one Kubernetes client of tekscore: `connect`, the error tree, retried calls on raw JSON
objects, and `Watcher` (list, then watch from the list's resourceVersion, list again on 410 Gone
or a broken watch). The scheduler's PipelineRun store and Tekton runner and the Kubernetes tasks
(`tekscore task install|wait|uninstall`) all talk to the apiserver through it; no other module
imports `kubernetes` (an import-linter contract).

Does I/O (the Kubernetes API over `kubernetes.aio`'s configured aiohttp session). Objects are
the apiserver's JSON as dicts (camelCase, as `kubectl get -o json` shows them): the generated
models are strict and slow, and every caller reads a few fields. Importing this module imports
`kubernetes.aio` (about a second): the CLI imports it only when a task runs.

The errors (the library's `ApiException` and aiohttp's errors are wrapped and chained with
`from`, like kopf's `_cogs/clients/errors.py`)::

    KubeError                  base: the Kubernetes API did not do what was asked
    ├── ConfigError            no usable configuration: not in a pod, no kubeconfig
    ├── APIError               the apiserver answered an error status (`status`, `reason`)
    │   ├── NotFound           404
    │   ├── Conflict           409: the object exists, or a stale `metadata.resourceVersion`
    │   ├── Gone               410: a watch's resourceVersion is too old: list again
    │   ├── Forbidden          401, 403
    │   ├── Invalid            400, 422: the object was refused
    │   ├── TooManyRequests    429            (also Transient)
    │   └── ServerError        5xx            (also Transient)
    └── Transient              worth retrying: 429, 5xx, and...
        └── Unreachable        ...no answer: connection refused or reset, a timeout

Every call is retried on `Transient` errors with `common.retry.Policy` (`Kube(policy=...)`,
`Kube.retrying(...)` for a copy with other numbers); what is still failing raises.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import aiohttp
import orjson
import structlog
from kubernetes.aio import client as k8s
from kubernetes.aio import config as k8s_config
from kubernetes.aio.client.exceptions import ApiException
from tenacity import RetryCallState

from common.retry import Policy

log = structlog.get_logger("tekton.kube")

Obj = Mapping[str, Any]
MERGE_PATCH = "application/merge-patch+json"

# ---------------------------------------------------------------------------------- errors


class KubeError(Exception):
    """Base: the Kubernetes API did not do what was asked."""


class ConfigError(KubeError):
    """No usable configuration: not in a cluster, and no kubeconfig that loads."""


class Transient(KubeError):
    """A failure worth retrying (429, 5xx, no answer)."""


class Unreachable(Transient):
    """The apiserver did not answer: connection refused or reset, or a timeout."""


class APIError(KubeError):
    """The apiserver answered with an error status; `message` is its Status message."""

    def __init__(self, status: int, message: str, *, what: str = "") -> None:
        self.status = status
        self.message = message
        self.what = what
        prefix = f"{what}: " if what else ""
        super().__init__(f"{prefix}{status} {type(self).__name__}: {message}".rstrip(": "))


class NotFound(APIError):
    """404: no such object."""


class Conflict(APIError):
    """409: the object already exists, or it changed since the `resourceVersion` given."""


class Gone(APIError):
    """410: the resourceVersion a watch started from is too old; list again."""


class Forbidden(APIError):
    """401 or 403: the credentials may not do this."""


class Invalid(APIError):
    """400 or 422: the apiserver refused the request or the object."""


class TooManyRequests(APIError, Transient):
    """429: the apiserver asks to come back later."""


class ServerError(APIError, Transient):
    """5xx: the apiserver (or etcd behind it) failed."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: Invalid,
    401: Forbidden,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def api_error(status: int, message: str, *, what: str = "") -> APIError:
    """The error of an answer with this status (and the Status object's message)."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    return cls(status, message, what=what)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying may help (the predicate of every retry here)."""
    return isinstance(exc, Transient)


def _status_message(body: bytes) -> str:
    """The `message` of a Status answer, else the start of the body."""
    try:
        status = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip()[:300]
    if isinstance(status, dict) and status.get("message"):
        return str(status["message"])
    return ""


# ---------------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class Resource:
    """A namespaced kind of the API: its group ("" for the core group), version and plural."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str, name: str | None = None) -> str:
        root = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        path = f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{path}/{name}" if name is not None else path


PODS = Resource("", "v1", "pods")
CONFIGMAPS = Resource("", "v1", "configmaps")
SECRETS = Resource("", "v1", "secrets")
JOBS = Resource("batch", "v1", "jobs")
PIPELINERUNS = Resource("tekton.dev", "v1", "pipelineruns")
TASKRUNS = Resource("tekton.dev", "v1", "taskruns")


def name_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))


# ---------------------------------------------------------------------------------- the client


def _on_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    log.warning("kubernetes api retry", attempt=state.attempt_number, error=str(exc)[:300])


def policy(*, attempts: int = 5, first: float = 0.2, longest: float = 10.0) -> Policy:
    """The retry policy of Kubernetes calls: `Transient` errors only, each retry logged."""
    return Policy(
        retry_on=is_transient,
        attempts=attempts,
        first=first,
        longest=longest,
        on_retry=_on_retry,
    )


async def _body(response: aiohttp.ClientResponse, what: str) -> bytes:
    """The whole body of an answer, the response released; `Unreachable` when it breaks off."""
    try:
        return await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Unreachable(f"{what}: {type(exc).__name__}: {exc}") from exc
    finally:
        response.release()


class Kube:
    """Calls to the Kubernetes API on raw JSON objects, each retried on transient errors by
    `policy`; build with `await connect()` (or around an `ApiClient` in tests); `close()` (or
    `async with`) at the end."""

    def __init__(self, api: k8s.ApiClient, *, retry: Policy | None = None) -> None:
        self.api = api
        self.policy = retry or policy()

    def retrying(self, *, attempts: int, first: float = 0.2, longest: float = 10.0) -> Kube:
        """The same client (one connection pool) with another retry policy."""
        return Kube(self.api, retry=policy(attempts=attempts, first=first, longest=longest))

    async def close(self) -> None:
        await self.api.close()  # type: ignore[no-untyped-call]

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    # -- one request -----------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        request_timeout: float | None = None,
        accept: str = "application/json",
    ) -> aiohttp.ClientResponse:
        """One HTTP request; the aiohttp response of a 2xx answer (the caller reads and
        releases it); an `APIError` or `Unreachable` otherwise."""
        headers = {"Accept": accept}
        if content_type is not None:
            headers["Content-Type"] = content_type
        what = f"{method} {path}"
        try:
            method, url, headers, body, _ = await self.api.param_serialize(
                method=method,
                resource_path=path,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            answer = await self.api.call_api(
                method, url, header_params=headers, body=body, _request_timeout=request_timeout
            )
        except ApiException as exc:
            status = exc.status if isinstance(exc.status, int) else 0
            if status == 0:
                raise Unreachable(f"{what}: {exc.reason}") from exc
            raise api_error(status, str(exc.reason or ""), what=what) from exc
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise Unreachable(f"{what}: {type(exc).__name__}: {exc}") from exc
        response: aiohttp.ClientResponse = answer.response
        if response.status >= 400:
            data = await _body(response, what)
            raise api_error(response.status, _status_message(data), what=what)
        return response

    async def _json(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        request_timeout: float | None = None,
    ) -> dict[str, Any]:
        """One request, retried by the policy; the answer's JSON object ({} when empty)."""
        async for attempt in self.policy.retrying():
            with attempt:
                response = await self._send(
                    method,
                    path,
                    query=query,
                    body=body,
                    content_type=content_type,
                    request_timeout=request_timeout,
                )
                data = await _body(response, f"{method} {path}")
                value = orjson.loads(data) if data else {}
                return value if isinstance(value, dict) else {}
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the verbs -------------------------------------------------------------------------

    async def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        """One object; `NotFound` when there is none."""
        return await self._json("GET", resource.path(namespace, name))

    async def list(
        self,
        resource: Resource,
        namespace: str,
        *,
        selector: str | None = None,
        limit: int | None = None,
        request_timeout: float | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The objects (label `selector`) and the list's resourceVersion."""
        query = []
        if selector:
            query.append(("labelSelector", selector))
        if limit is not None:
            query.append(("limit", str(limit)))
        body = await self._json(
            "GET", resource.path(namespace), query=query, request_timeout=request_timeout
        )
        items = [o for o in body.get("items") or [] if isinstance(o, dict)]
        return items, (body.get("metadata") or {}).get("resourceVersion")

    async def create(
        self, resource: Resource, namespace: str, obj: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Create an object; `Conflict` when it exists. The created object as the apiserver
        stored it (uid, resourceVersion)."""
        return await self._json("POST", resource.path(namespace), body=dict(obj))

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """An RFC 7386 JSON merge-patch; with `metadata.resourceVersion` in it, `Conflict` when
        the object changed since. The patched object."""
        return await self._json(
            "PATCH", resource.path(namespace, name), body=dict(patch), content_type=MERGE_PATCH
        )

    async def delete(self, resource: Resource, namespace: str, name: str) -> None:
        """Delete an object; `NotFound` when there is none."""
        await self._json("DELETE", resource.path(namespace, name))

    async def pod_log(
        self, namespace: str, pod: str, *, container: str, tail_lines: int, previous: bool = False
    ) -> str:
        """The last `tail_lines` lines of a container's log (`previous`: of its instance before
        the last restart), as `kubectl logs --tail` reads them; tried once."""
        query = [("container", container), ("tailLines", str(tail_lines))]
        if previous:
            query.append(("previous", "true"))
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        response = await self._send("GET", path, query=query, accept="*/*")
        data = await _body(response, f"GET {path}")
        return data.decode("utf-8", "replace")

    async def watch(
        self,
        resource: Resource,
        namespace: str,
        *,
        selector: str | None,
        version: str | None,
        seconds: int,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """One watch request from `version`: its events as (type, object), BOOKMARKs
        included, until the server ends it after `seconds`. `Gone` when `version` is too
        old (as the answer's status or as an ERROR event); opening it is retried."""
        query = [("watch", "true"), ("allowWatchBookmarks", "true")]
        query.append(("timeoutSeconds", str(seconds)))
        if selector:
            query.append(("labelSelector", selector))
        if version:
            query.append(("resourceVersion", version))
        path = resource.path(namespace)
        response: aiohttp.ClientResponse | None = None
        async for attempt in self.policy.retrying():
            with attempt:
                response = await self._send(
                    "GET", path, query=query, request_timeout=seconds + 30.0
                )
        assert response is not None
        try:
            async for raw in response.content:
                line = raw.strip()
                if not line:
                    continue
                event = orjson.loads(line)
                kind, obj = str(event.get("type")), event.get("object") or {}
                if kind == "ERROR":
                    code = int(obj.get("code") or 500)
                    raise api_error(code, str(obj.get("message") or ""), what=f"watch {path}")
                yield kind, obj
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unreachable(f"watch {path}: {type(exc).__name__}: {exc}") from exc
        finally:
            response.release()


async def connect(*, retry: Policy | None = None) -> Kube:
    """A client: the pod's ServiceAccount in a cluster, else the kubeconfig (`$KUBECONFIG`, read
    now: the library reads it once, at import; else `~/.kube/config`). `ConfigError` when
    neither works."""
    configuration = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        source = "in-cluster"
    except k8s_config.ConfigException:
        try:
            await k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.environ.get("KUBECONFIG") or None,
                client_configuration=configuration,
            )
        except (k8s_config.ConfigException, OSError) as exc:
            raise ConfigError(str(exc)) from exc
        source = "kubeconfig"
    log.debug("kubernetes api", source=source, host=configuration.host)
    return Kube(k8s.ApiClient(configuration), retry=retry)


# ---------------------------------------------------------------------------------- the watcher


class _Broken(Exception):
    """A watch broke after it made progress: list again at once."""


class Watcher:
    """One kind's objects in one namespace, kept current in `objects` (name -> object): list,
    then watch from the list's resourceVersion; a watch the server ends is resumed from the last
    version seen (bookmarks included); on 410 Gone, or when a watch breaks after it made
    progress, list again. `keep` filters objects client-side too; `on_change` is called after
    every change (and `changed` is set, then replaced).

    `run()` raises the `KubeError` it cannot get past (a list, or the opening of a watch, still
    failing after the client's retries; a watch breaking before any event): the caller decides
    (a task fails). `run_forever()` never gives up: it records the error in `error`, waits (1 s,
    doubling up to 30 s) and lists again (the scheduler's cache)."""

    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        namespace: str,
        *,
        selector: str | None = None,
        keep: Callable[[Obj], bool] | None = None,
        on_change: Callable[[], None] | None = None,
        timeout: int = 300,
    ) -> None:
        self.kube = kube
        self.resource = resource
        self.namespace = namespace
        self.selector = selector
        self._keep = keep or (lambda _: True)
        self._on_change = on_change
        self.timeout = timeout
        self.objects: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self.changed = asyncio.Event()
        self.error: str | None = None
        self.lists = 0
        self._log = log.bind(kind=resource.plural, namespace=namespace)

    def put(self, obj: Obj) -> None:
        """Store one object now (after the caller's own write: read-your-writes)."""
        name = (obj.get("metadata") or {}).get("name")
        if name and self._keep(obj):
            self.objects[str(name)] = dict(obj)
            self._changed()

    def _changed(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()
        if self._on_change is not None:
            self._on_change()

    async def run(self) -> NoReturn:
        while True:
            items, version = await self.kube.list(
                self.resource, self.namespace, selector=self.selector
            )
            self.objects = {name_of(o): o for o in items if self._keep(o)}
            self.lists += 1
            self.error = None
            self.synced.set()
            self._changed()
            try:
                while True:
                    version = await self._follow(version)
            except Gone:
                self._log.info("watch expired, listing again")
            except _Broken as exc:
                self._log.warning("watch broke, listing again", error=str(exc.__cause__))

    async def _follow(self, version: str | None) -> str | None:
        """One watch request; the last resourceVersion seen when the server ends it."""
        started = time.monotonic()
        progressed = False
        try:
            async for kind, obj in self.kube.watch(
                self.resource,
                self.namespace,
                selector=self.selector,
                version=version,
                seconds=self.timeout,
            ):
                progressed = True
                meta = obj.get("metadata") or {}
                version = meta.get("resourceVersion") or version
                if kind == "BOOKMARK":
                    continue
                name = str(meta.get("name"))
                if kind == "DELETED" or not self._keep(obj):
                    if self.objects.pop(name, None) is None:
                        continue
                else:
                    self.objects[name] = obj
                self._changed()
        except Transient as exc:
            if progressed or time.monotonic() - started > 30:
                raise _Broken() from exc
            raise
        return version

    async def run_forever(self, *, first: float = 1.0, longest: float = 30.0) -> NoReturn:
        delay, lists = first, self.lists
        while True:
            try:
                await self.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                self._log.warning("watch failed, listing again", error=self.error)
                if self.lists != lists:  # it listed since the last failure: start over
                    delay, lists = first, self.lists
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)
