"""Request bodies held to what every later step can handle: their size, and plain JSON.

No I/O of its own. `BodyLimit` (ASGI middleware) answers 413 naming the limit and its setting
when a body is larger than `max_body_bytes`: at once when `Content-Length` says so, else as
soon as the bytes received pass it (a chunked body is not read further).

Python's `json` accepts three things that later fail far from the request: a lone UTF-16
surrogate (`"\\ud800"`: it parses, but no text encoder takes it: storing the job or hashing
the request failed), nesting hundreds of levels deep (pydantic's serialiser stops at about 250
levels; `json` itself raises RecursionError near 1,000) and `NaN`/`Infinity` (not JSON).
`StrictJSONRoute` makes each of them a 422 "JSON decode error" that says why. The checks cost
nothing on ordinary bodies: the tree is walked only when the raw bytes hold a surrogate
escape, or more brackets than the depth limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ir.limits import too_deep

MAX_JSON_DEPTH = 100
"""Levels of nested objects and arrays in a request body (an IR document may nest 64 of them,
`ir.limits.MAX_DEPTH`, and sits two levels down in a start request)."""

_TOO_DEEP = f"nested more than {MAX_JSON_DEPTH} levels deep"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON value", name, 0)


def _lone_surrogate(value: Any) -> bool:
    """Whether a string (key or value) anywhere in `value` holds a surrogate code point; `json`
    joins escaped pairs into one character, so any left is a lone one."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def parse_strict(body: bytes) -> Any:
    """The JSON value of `body`; `json.JSONDecodeError` for anything but plain JSON text."""
    try:
        value = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise json.JSONDecodeError(
            f"nested more than {MAX_JSON_DEPTH} levels deep", "", 0
        ) from None
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(f"not UTF-8 text: {exc.reason}", "", exc.start) from None
    if (body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH) and too_deep(value, MAX_JSON_DEPTH):
        raise json.JSONDecodeError(_TOO_DEEP, "", 0)
    if _SURROGATE_ESCAPE.search(body) and _lone_surrogate(value):
        raise json.JSONDecodeError("a lone UTF-16 surrogate (\\ud800-\\udfff) is not text", "", 0)
    return value


class StrictJSONRequest(Request):
    """A request whose `json()` is `parse_strict`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_strict(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """An API route that reads JSON bodies with `parse_strict` (FastAPI answers its
    `JSONDecodeError` with 422)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


def _too_large(limit: int) -> str:
    return (
        f"the request body is larger than the limit of {limit} bytes "
        "(setting TEKSCORE_MAX_BODY_BYTES)"
    )


class BodyLimit:
    """ASGI middleware: 413 for a request body over `limit` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await JSONResponse({"detail": _too_large(self.limit)}, 413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:  # the route's error handling answers it
                    raise HTTPException(413, _too_large(self.limit))
            return message

        await self.app(scope, counted, send)
