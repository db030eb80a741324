"""Request bodies held to what every later step can handle: their size, and plain JSON.

No I/O of its own. `BodyLimit` (ASGI middleware) answers 413 naming the limit and its setting
when a body is larger than `max_body_bytes`: at once when `Content-Length` says so, else as
soon as the bytes received pass it (a chunked body is not read further).

Python's `json` accepts three things that later fail far from the request: a lone UTF-16
surrogate (`"\\ud800"`: it parses, but no text encoder takes it: storing the job or hashing
the request failed), nesting hundreds of levels deep (pydantic's serialiser stops at about 250
levels; `json` itself raises RecursionError near 1,000) and `NaN`/`Infinity` (not JSON).
`StrictJSONRoute` makes each of them a 422 "JSON decode error" that says why. The checks cost
little: the depth is read from the raw bytes (only when they hold more brackets than the
limit), and the parsed tree is walked for surrogates only when the bytes hold an escape of one.
"""

from __future__ import annotations

import array
import itertools
import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_JSON_DEPTH = 100
"""Levels of nested objects and arrays in a request body (an IR document may nest 64 of them,
`ir.limits.MAX_DEPTH`, and sits two levels down in a start request)."""

_TOO_DEEP = f"nested more than {MAX_JSON_DEPTH} levels deep"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON value", name, 0)


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)  # made once: `json.loads` with a
# hook builds a decoder per call


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # as signed bytes: +1, +1, -1, -1


def _depth(body: bytes) -> int:
    """How deep the objects and arrays of (valid) JSON text nest, from its bytes: strings
    removed, the brackets left as +1/-1, their running sum's peak. In C but for the sum."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(array.array("b", brackets.translate(_STEPS))), default=0)


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
        value = _DECODER.decode(body.decode("utf-8"))
    except RecursionError:
        raise json.JSONDecodeError(
            f"nested more than {MAX_JSON_DEPTH} levels deep", "", 0
        ) from None
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(f"not UTF-8 text: {exc.reason}", "", exc.start) from None
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and _depth(body) > MAX_JSON_DEPTH:
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
