"""`type: file` channels: a local (or mounted) file in jsonl, csv or avro.

Does file I/O, in worker threads. The sink is atomic: it writes `.<name>.<pid>-<random>.tmp`
next to the final path and renames it over the final path only at `close()`; a killed flow leaves
at most that hidden temp file, never a partial file at the final path. It gathers encoded batches
in memory up to `WRITE_CHUNK` bytes and writes them in one trip to its worker thread (a trip per
batch cost more CPU than the write itself); `close()` writes the rest before the rename.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ir.channels import FileChannel
from scoring_flow.channels.base import ShardFilter, StreamSource
from scoring_flow.codecs import Decoded, Encoder, Rejected, decode
from scoring_flow.errors import SinkError, SourceError
from scoring_flow.types import Record

READ_BUFFER = 1 << 20
WRITE_CHUNK = 1 << 20
"""Encoded bytes the sink holds before writing them (what the file's own buffer held before)."""


class FileSource(StreamSource):
    """Reads a file lazily, one micro-batch at a time."""

    kind = "file"

    def __init__(self, spec: FileChannel, *, shard: ShardFilter) -> None:
        super().__init__(shard=shard, loop=bool(spec.config.loop))
        self.spec = spec
        self.path = Path(spec.config.path)
        self._fh: IO[bytes] | None = None

    async def open(self) -> None:
        """Check the file can be read."""
        if not self.path.is_file():
            raise SourceError("file", f"{self.path} does not exist or is not a file")
        if not os.access(self.path, os.R_OK):
            raise SourceError("file", f"{self.path} is not readable")

    def _open_decoder(self) -> Iterator[Decoded]:
        try:
            self._fh = self.path.open("rb", buffering=READ_BUFFER)
        except OSError as exc:
            raise SourceError("file", f"cannot open {self.path}: {exc.strerror}") from exc
        return decode(self.spec.format.encoding, self._fh, self.spec.format.schema_)

    def _close_stream(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class FileSink:
    """Writes to a temp file, renamed over the final path at close."""

    kind = "file"

    def __init__(self, spec: FileChannel) -> None:
        self.spec = spec
        self.path = Path(spec.config.path)
        # pid and a random part: in a sandbox (its own pid namespace) every flow may be pid 2
        unique = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.temp = self.path.with_name(f".{self.path.name}.{unique}.tmp")
        self._encoder = Encoder(spec.format.encoding, spec.format.schema_)
        self._fh: IO[bytes] | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0

    async def open(self) -> None:
        """Create the temp file (and the folder)."""
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.temp.open("wb", buffering=READ_BUFFER)
            self._fh.write(self._encoder.begin())
        except OSError as exc:
            raise SinkError("file", f"cannot write {self.temp}: {exc.strerror}") from exc

    async def write(self, records: list[Record]) -> Rejected:
        """Append the records that fit the encoding to the temp file; the others, by index."""
        data, rejected = self._encoder.encode(records)
        if self._fh is None:
            raise SinkError("file", "write after close")
        if data:
            self._pending.append(data)
            self._pending_size += len(data)
            if self._pending_size >= WRITE_CHUNK:
                await asyncio.to_thread(self._write, self._take_pending())
        return rejected

    def _take_pending(self) -> list[bytes]:
        pending, self._pending, self._pending_size = self._pending, [], 0
        return pending

    def _write(self, chunks: list[bytes]) -> None:
        if self._fh is None:
            raise SinkError("file", "write after close")
        try:
            self._fh.write(b"".join(chunks))
        except OSError as exc:
            raise SinkError("file", f"cannot write {self.temp}: {exc.strerror}") from exc

    async def close(self) -> None:
        """Write what is pending, flush, fsync and rename the temp file over the final path."""
        await asyncio.to_thread(self._finish, self._take_pending())

    def _finish(self, pending: list[bytes]) -> None:
        if self._fh is None:
            return
        try:
            self._fh.write(b"".join(pending))
            self._fh.write(self._encoder.end())
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
            os.replace(self.temp, self.path)
        except OSError as exc:
            self._discard()  # a full disk must not stay full of our temp file
            raise SinkError("file", f"cannot finish {self.path}: {exc.strerror}") from exc

    async def abort(self) -> None:
        """Remove the temp file, even when closing it fails (a full disk: its buffer cannot be
        flushed, and the file must go all the same)."""
        await asyncio.to_thread(self._discard)

    def _discard(self) -> None:
        self._take_pending()
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.close()  # the descriptor is closed even when the flush fails
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()
