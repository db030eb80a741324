"""`type: test-data` channels: the samples and sinks of the platform's test-data server
(`scoring_flow/testdata_server.py`, the `test-data` sub-chart), for trying a pipeline without
Kafka or S3.

Does network I/O with httpx. A source downloads its sample at `open()` (samples are small: they
come from a ConfigMap) and decodes it like a file, in the channel's format. A sink is atomic
like the file sink: it opens an upload, appends each batch's encoded bytes to it, and only
`close()` commits them under the sink's name (replacing what an earlier run left there);
`abort()` drops the upload, so a failed flow leaves nothing.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any

import httpx

from ir.channels import SampleDataChannel
from scoring_flow.channels.base import ShardFilter, StreamSource
from scoring_flow.codecs import Decoded, Encoder, Rejected, decode
from scoring_flow.errors import SinkError, SourceError
from scoring_flow.types import Record

TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def _problem(response: httpx.Response) -> str:
    """The server's `error`, else the status line."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return f"{response.status_code} {body['error']}"
    return f"{response.status_code} {response.reason_phrase}"


class SampleDataSource(StreamSource):
    """The sample `config.name` of the test-data server, this shard's records only."""

    kind = "test-data"

    def __init__(self, spec: SampleDataChannel, *, shard: ShardFilter) -> None:
        super().__init__(shard=shard, loop=bool(spec.config.loop))
        self.spec = spec
        self.url = f"{spec.config.url.rstrip('/')}/samples/{spec.config.name}"
        self._data: bytes | None = None

    async def open(self) -> None:
        """Download the sample (`SourceError` naming the URL when it cannot be had)."""
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                response = await client.get(self.url)
        except httpx.HTTPError as exc:
            raise SourceError("test-data", f"GET {self.url}: {exc!r}") from exc
        if response.status_code != 200:
            raise SourceError("test-data", f"GET {self.url}: {_problem(response)}")
        self._data = response.content

    def _open_decoder(self) -> Iterator[Decoded]:
        if self._data is None:
            raise SourceError("test-data", "read before open")
        fmt = self.spec.format
        return decode(fmt.encoding, io.BytesIO(self._data), fmt.schema_)

    def _close_stream(self) -> None:
        """Nothing to close: the sample is in memory."""


class SampleDataSink:
    """An upload to the test-data server, committed under `config.name` at close."""

    kind = "test-data"

    def __init__(self, spec: SampleDataChannel) -> None:
        self.spec = spec
        self.base = f"{spec.config.url.rstrip('/')}/sinks/{spec.config.name}"
        self._encoder = Encoder(spec.format.encoding, spec.format.schema_)
        self._client: httpx.AsyncClient | None = None
        self._upload: str | None = None

    async def _post(self, url: str, content: bytes = b"") -> httpx.Response:
        assert self._client is not None
        try:
            response = await self._client.post(url, content=content)
        except httpx.HTTPError as exc:
            raise SinkError("test-data", f"POST {url}: {exc!r}") from exc
        if response.status_code >= 300:
            raise SinkError("test-data", f"POST {url}: {_problem(response)}")
        return response

    async def open(self) -> None:
        """Open an upload and send the encoding's opening bytes (the avro header)."""
        self._client = httpx.AsyncClient(timeout=TIMEOUT)
        response = await self._post(f"{self.base}/uploads")
        self._upload = f"{self.base}/uploads/{response.json()['upload']}"
        begin = self._encoder.begin()
        if begin:
            await self._post(self._upload, begin)

    async def write(self, records: list[Record]) -> Rejected:
        """Append the records that fit the encoding to the upload; the others, by index."""
        data, rejected = self._encoder.encode(records)
        if data:
            if self._upload is None:
                raise SinkError("test-data", "write after close")
            await self._post(self._upload, data)
        return rejected

    async def close(self) -> None:
        """Send the closing bytes and commit: the sink's name now holds this run's output."""
        if self._upload is None:
            return
        upload, self._upload = self._upload, None
        try:
            end = self._encoder.end()
            if end:
                await self._post(upload, end)
            await self._post(f"{upload}/commit")
        finally:
            await self._aclose()

    async def abort(self) -> None:
        """Drop the upload (best effort: the server forgets uploads it is not told about only
        when it restarts, and they are never visible)."""
        upload, self._upload = self._upload, None
        try:
            if upload is not None and self._client is not None:
                with contextlib.suppress(httpx.HTTPError):
                    await self._client.delete(upload)
        finally:
            await self._aclose()

    async def _aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
