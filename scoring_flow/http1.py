"""A minimal HTTP/1.1 client for the flow's hot path: POSTs to plain-http scoring services over
keep-alive connections on asyncio streams.

Does network I/O. On this path httpx's request and response layers (h11, anyio, its stream
wrappers) cost about 4 ms of CPU per 1024-record batch, 4 us a record: about as much as the
model call itself, in the process that bounds the flow's throughput (docs/benchmarks.md). This
client writes each request in one go and reads the answer by its `Content-Length` (or chunked,
or up to the end of the connection), nothing more: no redirects, cookies, proxies or TLS; a
service URL it cannot serve (`https://`) stays with httpx (`supports`).

A kept-alive connection the server has closed meanwhile (its idle timeout) fails at the next
request before any answer byte arrives: that request is sent again once on a new connection,
as browsers and httpcore do. Errors: `OSError` (connect, reset), `asyncio.IncompleteReadError`
and `Http1Error` (a cut or unreadable answer), and the caller's `asyncio.timeout`; the caller
maps them to its retriable error.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
MAX_HEAD = 64 * 1024
"""The longest status line + headers accepted."""


class Http1Error(Exception):
    """The answer is not HTTP/1.1 this client can read."""


def supports(url: str) -> bool:
    """Whether this client serves `url` (plain http)."""
    return url.startswith("http://")


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole HTTP answer."""

    status: int
    reason: str
    body: bytes


@dataclass(frozen=True, slots=True)
class _Target:
    host: str
    port: int
    head: bytes  # the request line and the fixed headers, up to Content-Length's value


class Http1Pool:
    """Keep-alive connections per host and port, at most `max_connections` in use at once."""

    def __init__(self, *, max_connections: int) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._targets: dict[str, _Target] = {}

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                raise ValueError(f"not a plain http URL: {url}")
            port = parts.port or 80
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Content-Type: application/json\r\nAccept: application/json\r\n"
                "Content-Length: "
            ).encode("ascii")
            target = self._targets[url] = _Target(parts.hostname, port, head)
        return target

    async def post(self, url: str, body: bytes) -> Answer:
        """POST `body` (JSON) to `url`; the whole answer. The caller bounds the time (the wait
        for a free connection included) with `asyncio.timeout`."""
        target = self._target(url)
        request = b"%b%d\r\n\r\n%b" % (target.head, len(body), body)
        key = (target.host, target.port)
        async with self._slots:
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                try:
                    return await self._exchange(key, conn, request)
                except _Stale:
                    continue  # closed by the server while idle: the next one, or a new one
            conn = await asyncio.open_connection(target.host, target.port)
            try:
                return await self._exchange(key, conn, request)
            except _Stale as exc:
                raise Http1Error("the server closed the connection without answering") from exc

    async def _exchange(self, key: tuple[str, int], conn: _Conn, request: bytes) -> Answer:
        reader, writer = conn
        kept = False
        try:
            try:
                writer.write(request)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise Http1Error("the answer's head was cut") from exc
                raise _Stale() from exc
            except asyncio.LimitOverrunError as exc:
                raise Http1Error("the answer's head is too long") from exc
            status, reason, length, chunked, close = _parse_head(head)
            if status in (204, 304) or 100 <= status < 200:
                body = b""
            elif chunked:
                body = await _read_chunked(reader)
            elif length is not None:
                body = await reader.readexactly(length)
            else:
                body = await reader.read()  # delimited by the end of the connection
                close = True
            if not close:
                self._idle.setdefault(key, []).append(conn)
                kept = True
            return Answer(status, reason, body)
        finally:
            if not kept:
                writer.close()

    async def aclose(self) -> None:
        """Close every idle connection."""
        for conns in self._idle.values():
            for _, writer in conns:
                writer.close()
        self._idle.clear()


class _Stale(Exception):
    """A connection failed before any byte of the answer came."""


def _parse_head(head: bytes) -> tuple[int, str, int | None, bool, bool]:
    """Status, reason, Content-Length, chunked, and whether the server closes the connection."""
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise Http1Error(f"not an HTTP/1.1 answer: {lines[0][:80]!r}")
    status = int(parts[1])
    reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    length: int | None = None
    chunked = False
    close = parts[0] == b"HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError as exc:
                raise Http1Error(f"bad Content-Length {value.strip()!r}") from exc
        elif name == b"transfer-encoding":
            chunked = value.strip().lower().endswith(b"chunked")
        elif name == b"connection":
            tokens = {t.strip().lower() for t in value.split(b",")}
            close = b"close" in tokens or (close and b"keep-alive" not in tokens)
    return status, reason, length, chunked, close


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise Http1Error(f"bad chunk size {line[:40]!r}") from exc
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise Http1Error("a chunk does not end with CRLF")
