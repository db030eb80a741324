"""`type: s3` channels: one object in an S3-compatible store, in jsonl, csv or avro.

Does network I/O with boto3, in worker threads (boto3 is blocking; the client is made in
`open()`, never at import). The source streams the object (`get_object` body read in 1 MiB
pieces as records are decoded). The sink buffers encoded bytes up to `partSizeMb` and uploads
parts of a multipart upload; the object appears only when `close()` completes the upload (small
outputs are one `put_object` at close). `abort()` aborts the multipart upload, so a killed or
failed flow leaves no object at the key. Credentials: `accessKeyId`/`secretAccessKey` secretRefs,
else boto3's default chain (instance/IRSA roles, AWS_* env).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ir.channels import S3Channel
from scoring_flow.channels.base import ShardFilter, StreamSource
from scoring_flow.codecs import Decoded, Encoder, Rejected, decode
from scoring_flow.errors import SinkError, SourceError
from scoring_flow.secrets import resolve_optional
from scoring_flow.types import Record

MIB = 1024 * 1024
_BOTO_ERRORS = (BotoCoreError, ClientError)


def make_client(spec: S3Channel) -> Any:
    """A boto3 S3 client for the channel (credentials resolved from secretRefs)."""
    cfg = spec.config
    return boto3.session.Session().client(
        "s3",
        endpoint_url=cfg.endpoint_url,
        region_name=cfg.region or "us-east-1",
        aws_access_key_id=resolve_optional(cfg.access_key_id),
        aws_secret_access_key=resolve_optional(cfg.secret_access_key),
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )


def describe_error(exc: Exception) -> str:
    """An S3 error as `Code: Message`."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', '?')}: {err.get('Message', str(exc))}"
    return str(exc)


class _BodyReader(io.RawIOBase):
    """A raw binary stream over a boto3 StreamingBody, so it can be buffered and line-iterated."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:
        self._body.close()
        super().close()


class S3Source(StreamSource):
    """Streams one object."""

    kind = "s3"

    def __init__(self, spec: S3Channel, *, shard: ShardFilter) -> None:
        super().__init__(shard=shard, loop=bool(spec.config.loop))
        self.spec = spec
        self._client: Any = None
        self._stream: io.BufferedReader | None = None

    async def open(self) -> None:
        """Make the client and check the object exists."""
        cfg = self.spec.config
        try:
            self._client = await asyncio.to_thread(make_client, self.spec)
            await asyncio.to_thread(self._client.head_object, Bucket=cfg.bucket, Key=cfg.key)
        except _BOTO_ERRORS as exc:
            raise SourceError("s3", f"s3://{cfg.bucket}/{cfg.key}: {describe_error(exc)}") from exc

    def _open_decoder(self) -> Iterator[Decoded]:
        cfg = self.spec.config
        try:
            body = self._client.get_object(Bucket=cfg.bucket, Key=cfg.key)["Body"]
        except _BOTO_ERRORS as exc:
            raise SourceError("s3", f"s3://{cfg.bucket}/{cfg.key}: {describe_error(exc)}") from exc
        self._stream = io.BufferedReader(_BodyReader(body), buffer_size=MIB)
        return decode(self.spec.format.encoding, self._stream, self.spec.format.schema_)

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


class S3Sink:
    """Writes one object by multipart upload, completed only at close."""

    kind = "s3"

    def __init__(self, spec: S3Channel) -> None:
        self.spec = spec
        self.part_size = spec.config.part_size_mb * MIB
        self._encoder = Encoder(spec.format.encoding, spec.format.schema_)
        self._client: Any = None
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._done = False

    @property
    def where(self) -> str:
        """The object's address, for messages."""
        return f"s3://{self.spec.config.bucket}/{self.spec.config.key}"

    async def open(self) -> None:
        """Make the client and check the bucket exists."""
        try:
            self._client = await asyncio.to_thread(make_client, self.spec)
            await asyncio.to_thread(self._client.head_bucket, Bucket=self.spec.config.bucket)
        except _BOTO_ERRORS as exc:
            raise SinkError("s3", f"{self.where}: {describe_error(exc)}") from exc
        self._buffer += self._encoder.begin()

    async def write(self, records: list[Record]) -> Rejected:
        """Buffer the records that fit the encoding (the others come back by index); upload a
        part each time the buffer reaches the part size."""
        data, rejected = self._encoder.encode(records)
        self._buffer += data
        while len(self._buffer) >= self.part_size:
            chunk = bytes(self._buffer[: self.part_size])
            del self._buffer[: self.part_size]
            await asyncio.to_thread(self._upload_part, chunk)
        return rejected

    def _upload_part(self, chunk: bytes) -> None:
        cfg = self.spec.config
        try:
            if self._upload_id is None:
                answer = self._client.create_multipart_upload(Bucket=cfg.bucket, Key=cfg.key)
                self._upload_id = str(answer["UploadId"])
            number = len(self._parts) + 1
            part = self._client.upload_part(
                Bucket=cfg.bucket,
                Key=cfg.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=chunk,
            )
        except _BOTO_ERRORS as exc:
            raise SinkError("s3", f"{self.where}: {describe_error(exc)}") from exc
        self._parts.append({"ETag": part["ETag"], "PartNumber": number})

    async def close(self) -> None:
        """Upload the rest and complete the upload (or put the object when it is small)."""
        if self._done:
            return
        self._buffer += self._encoder.end()
        await asyncio.to_thread(self._finish, bytes(self._buffer))
        self._buffer.clear()
        self._done = True

    def _finish(self, rest: bytes) -> None:
        cfg = self.spec.config
        try:
            if self._upload_id is None:
                self._client.put_object(Bucket=cfg.bucket, Key=cfg.key, Body=rest)
                return
            if rest:
                self._upload_part(rest)
            self._client.complete_multipart_upload(
                Bucket=cfg.bucket,
                Key=cfg.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        except _BOTO_ERRORS as exc:
            raise SinkError("s3", f"{self.where}: {describe_error(exc)}") from exc

    async def abort(self) -> None:
        """Abort the multipart upload, so nothing appears at the key."""
        self._buffer.clear()
        if self._upload_id is None or self._done or self._client is None:
            return
        cfg = self.spec.config
        upload_id = self._upload_id
        self._upload_id = None
        try:
            await asyncio.to_thread(
                self._client.abort_multipart_upload,
                Bucket=cfg.bucket,
                Key=cfg.key,
                UploadId=upload_id,
            )
        except _BOTO_ERRORS:
            return
