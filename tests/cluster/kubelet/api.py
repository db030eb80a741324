"""A small async client of the Kubernetes API for the test kubelet (httpx, bearer token, the
cluster CA). Does I/O. `watch_forever` lists and then watches one path, re-listing on 410 Gone
and on any error, and hands every object to a callback, like a client-go informer."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import structlog

log = structlog.get_logger("kubelet.api")

Obj = dict[str, Any]
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body[:500]}")
        self.status = status
        self.body = body


class Api:
    def __init__(self, *, url: str, token: str, ca_file: str) -> None:
        context = ssl.create_default_context(cafile=ca_file)
        self.url = url
        self.client = httpx.AsyncClient(
            base_url=url,
            verify=context,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(30.0, connect=10.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        content = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if content is not None else {}
        for attempt in range(8):
            try:
                response = await self.client.request(
                    method, path, content=content, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                if attempt == 7:
                    raise
                log.warning("api retry", path=path, error=str(exc))
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            if response.status_code in (429, 500, 502, 503, 504) and attempt < 7:
                await asyncio.sleep(0.2 * 2**attempt)
                continue
            if response.status_code >= 400:
                raise ApiError(response.status_code, response.text)
            result: Obj = response.json() if response.content else {}
            return result
        raise AssertionError("unreachable")

    async def get(self, path: str) -> Obj | None:
        try:
            return await self.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, path: str, body: Obj) -> Obj | None:
        """POST; None when it already exists (409)."""
        try:
            return await self.request("POST", path, body=body)
        except ApiError as exc:
            if exc.status == 409:
                return None
            raise

    async def patch(self, path: str, body: Obj, *, content_type: str = MERGE) -> Obj:
        return await self.request("PATCH", path, body=body, content_type=content_type)

    async def delete(self, path: str, body: Obj | None = None) -> Obj | None:
        try:
            return await self.request("DELETE", path, body=body)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def watch(self, path: str, version: str, **params: Any) -> AsyncIterator[Obj]:
        query = {
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "300",
            **params,
        }
        async with self.client.stream(
            "GET", path, params=query, timeout=httpx.Timeout(None, connect=10.0)
        ) as response:
            if response.status_code == 410:
                raise ApiError(410, "gone")
            if response.status_code >= 400:
                raise ApiError(response.status_code, (await response.aread()).decode())
            async for line in response.aiter_lines():
                if line.strip():
                    yield json.loads(line)


Handler = Callable[[str, Obj], Awaitable[None] | None]


async def watch_forever(
    api: Api,
    path: str,
    handler: Handler,
    *,
    synced: asyncio.Event | None = None,
    params: dict[str, Any] | None = None,
) -> None:
    """List then watch `path` for ever: `handler("LIST", list)` with the whole list (the
    handler replaces what it knew), then `handler(type, obj)` for ADDED/MODIFIED/DELETED.
    Re-lists on 410 Gone and on errors."""
    params = params or {}
    delay = 0.5
    while True:
        try:
            listed = await api.request("GET", path, params=params)
            version = listed["metadata"]["resourceVersion"]
            await _call(handler, "LIST", listed)
            if synced is not None:
                synced.set()
            delay = 0.5
            while True:
                async for event in api.watch(path, version, **params):
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        raise ApiError(int(obj.get("code") or 500), str(obj.get("message")))
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if kind != "BOOKMARK":
                        await _call(handler, str(kind), obj)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not (isinstance(exc, ApiError) and exc.status == 410):
                log.warning("watch failed, listing again", path=path, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


async def _call(handler: Handler, kind: str, obj: Obj) -> None:
    result = handler(kind, obj)
    if result is not None:
        await result
