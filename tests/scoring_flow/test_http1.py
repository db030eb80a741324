"""The flow's HTTP/1.1 client for scoring calls (`scoring_flow.http1`) against real sockets: a
small asyncio server in the test answers with Content-Length, chunked, or up to the end of the
connection, closes idle keep-alive connections, or never answers; and through `ScoringClient`,
a refused connection and a timeout are retriable failures of the batch's records."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
import pytest

from ir.values import ServiceEndpoint
from scoring_flow.errors import RetriableScoringError
from scoring_flow.http1 import Http1Error, Http1Pool, supports
from scoring_flow.scoring import ScoringClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]
"""Answers one request on a connection (the number of requests it has seen); False closes it."""


class Server:
    """Counts connections and requests; each request's body is echoed by the handler."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.bodies: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/models/m/records"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        seen = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.bodies.append(await reader.readexactly(length))
                seen += 1
                if not await self.handler(reader, writer, seen):
                    return
        finally:
            writer.close()


def answer(body: bytes, *, status: str = "200 OK", extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


async def keep_alive(_: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: int) -> bool:
    writer.write(answer(b'{"n": %d}' % seen))
    await writer.drain()
    return True


def test_only_plain_http_is_served() -> None:
    assert supports("http://svc:8080/v2/models/m/records")
    assert not supports("https://svc/v2/models/m/records")


async def test_keep_alive_answers_reuse_one_connection() -> None:
    async with Server(keep_alive) as server:
        pool = Http1Pool(max_connections=4)
        try:
            got = [await pool.post(server.url, b'[{"a": %d}]' % i) for i in range(3)]
        finally:
            await pool.aclose()
    assert [orjson.loads(a.body) for a in got] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert all(a.status == 200 for a in got)
    assert server.connections == 1
    assert server.bodies == [b'[{"a": 0}]', b'[{"a": 1}]', b'[{"a": 2}]']


async def test_chunked_and_connection_close_answers() -> None:
    async def chunked(_: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: int) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"4\r\n[1, \r\n3;ext=1\r\n2, \r\n2\r\n3]\r\n0\r\n\r\n"
        )
        await writer.drain()
        return True

    async def closing(_: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: int) -> bool:
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\r\nbusy")
        await writer.drain()
        return False

    pool = Http1Pool(max_connections=2)
    try:
        async with Server(chunked) as server:
            first = await pool.post(server.url, b"[]")
            second = await pool.post(server.url, b"[]")
            assert orjson.loads(first.body) == orjson.loads(second.body) == [1, 2, 3]
            assert server.connections == 1
        async with Server(closing) as server:
            for _ in range(2):
                got = await pool.post(server.url, b"[]")
                assert (got.status, got.reason, got.body) == (503, "Service Unavailable", b"busy")
            assert server.connections == 2  # the server said close: no reuse
    finally:
        await pool.aclose()


async def test_a_connection_closed_while_idle_is_replaced() -> None:
    """The server's idle timeout closed the kept-alive connection: the next request goes out
    again on a new connection instead of failing."""

    async def once(_: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: int) -> bool:
        writer.write(answer(b"[]"))  # says nothing about closing, then closes
        await writer.drain()
        return False

    async with Server(once) as server:
        pool = Http1Pool(max_connections=1)
        try:
            for _ in range(3):
                assert (await pool.post(server.url, b"[]")).body == b"[]"
        finally:
            await pool.aclose()
    assert server.connections == 3
    assert len(server.bodies) == 3  # each request reached the server once


async def test_a_cut_answer_is_an_error_not_a_retry() -> None:
    async def cut(_: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n[1, 2")
        await writer.drain()
        return False

    async with Server(cut) as server:
        pool = Http1Pool(max_connections=1)
        try:
            with pytest.raises(asyncio.IncompleteReadError):
                await pool.post(server.url, b"[]")
        finally:
            await pool.aclose()
    assert len(server.bodies) == 1


async def test_not_http_is_an_error() -> None:
    async def garbage(_: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: int) -> bool:
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        return False

    async with Server(garbage) as server:
        pool = Http1Pool(max_connections=1)
        try:
            with pytest.raises(Http1Error, match=r"not an HTTP/1\.1 answer"):
                await pool.post(server.url, b"[]")
        finally:
            await pool.aclose()


def endpoint(url: str) -> dict[str, ServiceEndpoint]:
    return {"s": ServiceEndpoint(url=url, protocol="records", models=["m"])}


async def test_scoring_client_timeouts_and_refusals_fail_the_batch_retriably() -> None:
    async def silent(reader: asyncio.StreamReader, _: asyncio.StreamWriter, seen: int) -> bool:
        await reader.read()  # never answers; returns when the client gives up
        return False

    async with Server(silent) as server:
        base = server.url.split("/v2/")[0]
        async with ScoringClient(endpoint(base), timeout=0.3, max_retries=0) as client:
            answers = await client.score(service="s", model="m", payloads=[{"a": 1}, {"a": 2}])
    assert len(answers) == 2
    assert all(isinstance(a, RetriableScoringError) for a in answers)
    assert "timed out after 0.3s" in answers[0].detail

    async with ScoringClient(endpoint(base), timeout=5, max_retries=0) as client:
        answers = await client.score(service="s", model="m", payloads=[{"a": 1}])
    assert isinstance(answers[0], RetriableScoringError)
    assert "ConnectionRefusedError" in answers[0].detail


async def test_scoring_client_posts_records_over_the_fast_path() -> None:
    async def records(_: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: int) -> bool:
        writer.write(answer(b'[{"p": 1}, {"p": 2}]'))
        await writer.drain()
        return True

    async with Server(records) as server:
        base = server.url.split("/v2/")[0]
        async with ScoringClient(endpoint(base), timeout=5, max_retries=0) as client:
            for _ in range(2):
                got = await client.score(service="s", model="m", payloads=[{"a": 1}, {"a": 2}])
                assert got == [{"p": 1}, {"p": 2}]
    assert server.connections == 1
    assert [orjson.loads(b) for b in server.bodies] == [[{"a": 1}, {"a": 2}]] * 2
