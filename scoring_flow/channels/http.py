"""`type: http` sources: the flow serves `POST {path}` and answers each request with its records'
outcome, after the sink has them.

Does network I/O (serves a port with uvicorn inside the flow's loop). Request body: one record
(a JSON object) or a list of records. Answer for a list: 200 with one entry per record, in order:
the result object (one output), a list (0 or several outputs), `null` (filtered) or
`{"$error": reason, "$step": step}` (failed, and dead-lettered). Answer for one object: 200 with
its entry, or 422 `{"error": reason, "step": step}` when it failed. Each request is one batch;
at most `concurrency` requests are queued (backpressure); after `stop()` new requests get 503.

With `fastscore: true` it also serves FastScore's round trip, `POST /2/active/model/roundtrip/0/1`
(the path the FastScore SDK's `Engine.roundtrip` calls): the body is JSON records, one per line;
the answer (200, `application/x-ndjson`) is the outputs of those records in order, one per line,
with `{"$error": reason, "$step": step}` in the place of a record that failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scoring_flow.channels.base import SourceBatch
from scoring_flow.errors import SourceError
from scoring_flow.httpserver import RunningServer, bind_host
from scoring_flow.items import Item

ROUND_TRIP_PATH = "/2/active/model/roundtrip/0/1"


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def entry(item: Item) -> Any:
    """What the answer says about one record."""
    if item.failure is not None:
        return {"$error": item.failure.reason, "$step": item.failure.step}
    if item.filtered:
        return None
    return item.results[0] if len(item.results) == 1 else item.results


class HttpSource:
    """Serves `POST {path}`; every request becomes one batch."""

    kind = "http"

    def __init__(
        self,
        *,
        path: str,
        port: int,
        queue_size: int,
        fastscore: bool = False,
        host: str | None = None,
    ) -> None:
        self.path = path
        self.fastscore = fastscore
        self.port = port
        self.host = host or bind_host()
        self._queue: asyncio.Queue[SourceBatch] = asyncio.Queue(maxsize=max(queue_size, 1))
        self._stopped = asyncio.Event()
        self._pending: set[asyncio.Future[None]] = set()
        self._ordinal = 0
        self._server: RunningServer | None = None

    async def open(self) -> None:
        """Start serving."""
        routes = [Route(self.path, self._handle, methods=["POST"])]
        if self.fastscore:
            routes.append(Route(ROUND_TRIP_PATH, self._round_trip, methods=["POST"]))
        app = Starlette(routes=routes)
        self._server = RunningServer(app, host=self.host, port=self.port)
        try:
            await self._server.start()
        except OSError as exc:
            raise SourceError("http", f"cannot serve on port {self.port}: {exc}") from exc
        self.port = self._server.port

    async def _handle(self, request: Request) -> Response:
        if self._stopped.is_set():
            return _json({"error": "the flow is shutting down"}, 503)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return _json({"error": f"the body is not JSON: {exc}"}, 400)
        single = isinstance(body, dict)
        records = [body] if single else body
        if not isinstance(records, list):
            return _json({"error": "send a record (object) or a list of records"}, 400)
        items = await self._score(records)
        if items is None:
            return _json({"error": "the flow stopped before scoring the request"}, 503)
        if single:
            item = items[0]
            if item.failure is not None:
                return _json({"error": item.failure.reason, "step": item.failure.step}, 422)
            return _json(entry(item))
        return _json([entry(i) for i in items])

    async def _round_trip(self, request: Request) -> Response:
        """FastScore's round trip: JSON lines in, the outputs as JSON lines out."""
        if self._stopped.is_set():
            return _json({"error": "the flow is shutting down"}, 503)
        records: list[Any] = []
        for number, line in enumerate((await request.body()).splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                return _json({"error": f"line {number} is not JSON: {exc}"}, 400)
        items = await self._score(records)
        if items is None:
            return _json({"error": "the flow stopped before scoring the request"}, 503)
        lines: list[bytes] = []
        for item in items:
            if item.failure is not None:
                lines.append(orjson.dumps(entry(item)))
            elif not item.filtered:
                lines.extend(orjson.dumps(r) for r in item.results)
        body = b"".join(line + b"\n" for line in lines)
        return Response(body, status_code=200, media_type="application/x-ndjson")

    async def _score(self, records: list[Any]) -> list[Item] | None:
        """The records as one batch through the flow: their items once the sink has them, or
        None when the flow stopped first."""
        items = []
        for record in records:
            if isinstance(record, dict):
                items.append(Item.of(self._ordinal, record))
            else:
                items.append(
                    Item.bad(
                        self._ordinal, record, reason="a record must be an object", step="decode"
                    )
                )
            self._ordinal += 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.add(done)
        try:
            await self._queue.put(SourceBatch(items=items, token=done))
            await done
        except (asyncio.CancelledError, SourceError):
            return None
        finally:
            self._pending.discard(done)
        return items

    async def batches(self, size: int) -> AsyncIterator[SourceBatch]:
        """Requests as they come, until `stop()`."""
        while True:
            if self._stopped.is_set() and self._queue.empty():
                return
            getter = asyncio.ensure_future(self._queue.get())
            stopper = asyncio.ensure_future(self._stopped.wait())
            await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()

    async def commit(self, batch: SourceBatch) -> None:
        """Answer the request."""
        done = batch.token
        if isinstance(done, asyncio.Future) and not done.done():
            done.set_result(None)

    def stop(self) -> None:
        """Refuse new requests; queued ones are still scored."""
        self._stopped.set()

    async def close(self) -> None:
        """Fail requests still waiting and stop serving."""
        for done in list(self._pending):
            if not done.done():
                done.set_exception(SourceError("http", "the flow stopped"))
        if self._server is not None:
            await self._server.stop()
            self._server = None
