"""Kubernetes API plumbing of the Tekton backend: transient-error retries and `Informer`, a
watch-fed cache of one kind's objects (list, then watch from the list's resourceVersion, list
again on 410 Gone or any error).

Does I/O (the Kubernetes API through `kubernetes.aio` and aiohttp watch streams).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import structlog
from kubernetes.aio.client.exceptions import ApiException

from common.retry import Policy
from tekton.tasks.kube import transient

log = structlog.get_logger("scheduler.kube")

MERGE_PATCH = "application/merge-patch+json"


class Gone(Exception):
    """The watch's resourceVersion expired (410): list again."""


def status_of(exc: BaseException) -> int | None:
    return exc.status if isinstance(exc, ApiException) else None


async def retried(call: Callable[[], Awaitable[Any]], *, attempts: int = 5) -> Any:
    """`call()`, retried with exponential backoff on transient errors (`common.retry`)."""
    async for attempt in Policy(retry_on=transient, attempts=attempts).retrying():
        with attempt:
            return await call()
    raise AssertionError("unreachable")  # pragma: no cover


ListFn = Callable[[], Awaitable[tuple[list[dict[str, Any]], str | None]]]
WatchFn = Callable[[str | None], Awaitable[aiohttp.ClientResponse]]


class Informer:
    """One kind's objects, kept current by list + watch; re-lists on 410 Gone or errors."""

    def __init__(
        self,
        *,
        kind: str,
        list_fn: ListFn,
        watch_fn: WatchFn,
        keep: Callable[[Mapping[str, Any]], bool],
        retry_delay: float = 1.0,
    ) -> None:
        self.kind = kind
        self._list = list_fn
        self._watch = watch_fn
        self._keep = keep
        self._retry_delay = retry_delay
        self.objects: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self.error: str | None = None
        self.changed = asyncio.Event()  # set on every change (tests and waiters)

    def put(self, obj: Mapping[str, Any]) -> None:
        """Store one object now (after our own writes: read-your-writes on this replica)."""
        name = (obj.get("metadata") or {}).get("name")
        if name and self._keep(obj):
            self.objects[str(name)] = dict(obj)
            self._notify()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def run(self) -> None:
        delay = self._retry_delay
        while True:
            try:
                items, version = await self._list()
                self.objects = {str(o["metadata"]["name"]): o for o in items if self._keep(o)}
                self.synced.set()
                self.error = None
                self._notify()
                delay = self._retry_delay
                while True:
                    version = await self._follow(version)
            except Gone:
                log.info("watch expired, listing again", kind=self.kind)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("watch failed, listing again", kind=self.kind, error=self.error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _follow(self, version: str | None) -> str | None:
        """One watch request from `version`; the last version seen when it ends."""
        response = await self._watch(version)
        try:
            if response.status == 410:
                raise Gone()
            if response.status != 200:
                body = (await response.read()).decode(errors="replace")[:500]
                raise ApiException(status=response.status, reason=body)
            async for raw in response.content:
                line = raw.strip()
                if not line:
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise ApiException(status=obj.get("code") or 500, reason=obj.get("message"))
                meta = obj.get("metadata") or {}
                version = meta.get("resourceVersion") or version
                if kind == "BOOKMARK":
                    continue
                name = str(meta.get("name"))
                if kind == "DELETED" or not self._keep(obj):
                    self.objects.pop(name, None)
                else:
                    self.objects[name] = obj
                self._notify()
        finally:
            response.release()
        return version
