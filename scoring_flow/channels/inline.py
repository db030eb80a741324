"""`type: inline` sources (records written in the IR) and `type: discard` sinks.

No I/O: records come from the config, and the discard sink drops what it gets.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator

from ir.channels import InlineChannel
from scoring_flow.channels.base import ShardFilter, SourceBatch, batches_from
from scoring_flow.codecs import Decoded, Rejected
from scoring_flow.types import Record


class InlineSource:
    """The records of `config.records`, this shard's only."""

    kind = "inline"

    def __init__(self, spec: InlineChannel, *, shard: ShardFilter) -> None:
        self.records = spec.config.records
        self.loop = bool(spec.config.loop)
        self.shard = shard
        self._stopped = threading.Event()

    async def open(self) -> None:
        """Nothing to open."""

    def _decoder(self) -> Iterator[Decoded]:
        return iter([dict(r) for r in self.records])

    def batches(self, size: int) -> AsyncIterator[SourceBatch]:
        """Batches of the inline records."""
        return batches_from(
            self._decoder,
            size=size,
            shard=self.shard,
            stopped=self._stopped,
            loop=self.loop,
        )

    async def commit(self, batch: SourceBatch) -> None:
        """Nothing to commit."""

    def stop(self) -> None:
        """Stop after the current batch."""
        self._stopped.set()

    async def close(self) -> None:
        """Nothing to close."""


class DiscardSink:
    """Drops every record."""

    kind = "discard"

    async def open(self) -> None:
        """Nothing to open."""

    async def write(self, records: list[Record]) -> Rejected:
        """Drop the records (every value fits nowhere)."""
        return {}

    async def close(self) -> None:
        """Nothing to close."""

    async def abort(self) -> None:
        """Nothing to abort."""
