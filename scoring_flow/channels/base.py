"""The common shape of sources and sinks, and the batching shared by finite sources.

The protocols and `SourceBatch` are pure data; `batches_from` runs a blocking decoder in a worker
thread one micro-batch at a time, so a source of any size holds at most one batch in memory here.

A source hands out `SourceBatch`es; the runner calls `commit(batch)` in source order once the
sink (and the dead-letter channel) hold the batch's outcome — Kafka commits offsets there, the
HTTP source answers its caller. A sink gets `write` calls in order, then `close` (which makes the
output visible: rename, multipart complete) or `abort` (which leaves nothing at the final place).
`write` returns the records it could not encode (`Rejected`), so one bad value costs one record.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from scoring_flow.codecs import Decoded, JsonLines, Rejected
from scoring_flow.items import Item
from scoring_flow.types import BadRecord, Record


@dataclass(slots=True)
class SourceBatch:
    """One micro-batch of input records and what its source needs to commit it."""

    items: list[Item]
    token: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    """Where records come from."""

    kind: str

    async def open(self) -> None:
        """Connect / check the input exists (errors here are fatal: SourceError)."""

    def batches(self, size: int) -> AsyncIterator[SourceBatch]:
        """Micro-batches of at most `size` records until the source ends or `stop()`."""

    async def commit(self, batch: SourceBatch) -> None:
        """The batch's outcome is safely stored downstream."""

    def stop(self) -> None:
        """Stop taking new records (streaming shutdown); `batches` then ends soon."""

    async def close(self) -> None:
        """Release connections."""


class Sink(Protocol):
    """Where records go."""

    kind: str

    async def open(self) -> None:
        """Prepare the output (errors here are fatal: SinkError)."""

    async def write(self, records: list[Record]) -> Rejected:
        """Append records, in order; the ones whose values the channel's encoding cannot carry
        are left out and returned by index with the reason (the flow dead-letters them)."""

    async def close(self) -> None:
        """Make everything written visible, atomically where the medium allows."""

    async def abort(self) -> None:
        """Give up: leave no partial output at the final place."""


def to_item(ordinal: int, decoded: Decoded, *, step: str = "decode") -> Item:
    """An item for a decoded record, or a pre-failed one for undecodable input."""
    if isinstance(decoded, BadRecord):
        return Item.bad(ordinal, decoded.raw, reason=decoded.reason, step=step)
    return Item.of(ordinal, decoded)


class ShardFilter:
    """Keeps records whose ordinal (0-based, over the whole source) % shards == index."""

    def __init__(self, *, index: int, shards: int) -> None:
        self.index = index
        self.shards = shards

    def take(self, decoded: Iterator[Decoded], size: int, state: list[int]) -> list[Item]:
        """Up to `size` items of this shard from `decoded`; `state[0]` is the next ordinal."""
        if self.shards == 1 and isinstance(decoded, JsonLines):
            return _items(decoded.take(size), state)
        out: list[Item] = []
        while len(out) < size:
            try:
                record = next(decoded)
            except StopIteration:
                break
            ordinal = state[0]
            state[0] += 1
            if ordinal % self.shards == self.index:
                out.append(to_item(ordinal, record))
        return out


def shard_name(name: str, *, index: int, shards: int) -> str:
    """The file path or object key shard `index` of `shards` writes for a sink named `name`:
    the name itself for one shard, else `-SSSSS-of-NNNNN` before the last extension (Apache
    Beam's convention: `out.jsonl` -> `out-00001-of-00003.jsonl`), so shards never overwrite
    each other and a glob `out-*-of-00003.jsonl` reads the whole output."""
    if shards <= 1:
        return name
    head, slash, base = name.rpartition("/")
    stem, dot, ext = base.rpartition(".")
    if not stem:  # no extension, or a name that starts with its only dot
        stem, dot, ext = base, "", ""
    return f"{head}{slash}{stem}-{index:05d}-of-{shards:05d}{dot}{ext}"


def _items(decoded: list[Decoded], state: list[int]) -> list[Item]:
    """Items for consecutive decoded records (the unsharded hot path); `state[0]` is the next
    ordinal."""
    start = state[0]
    state[0] = start + len(decoded)
    return [
        Item(ordinal, d, [d]) if type(d) is dict else to_item(ordinal, d)
        for ordinal, d in enumerate(decoded, start)
    ]


READ_CHUNK = 4096
"""Records a source reads per trip to its worker thread (as whole batches, at least one): each
trip costs a thread wake-up and one of the event loop, about as much CPU as decoding a hundred
records, so small batches are read a few at a time."""


async def batches_from(
    open_decoder: Callable[[], Iterator[Decoded]],
    *,
    size: int,
    shard: ShardFilter,
    stopped: threading.Event,
    on_close: Callable[[], None] | None = None,
    loop: bool = False,
) -> AsyncIterator[SourceBatch]:
    """Batches from a blocking decoder, read in a worker thread `READ_CHUNK` records at a time
    (at least one batch; memory holds at most that much here). With `loop` the input is opened
    again from its start each time it ends (FastScore's `Loop`), until `stopped`; a pass that
    yields no record at all ends it (an empty input would otherwise spin)."""
    decoder = await asyncio.to_thread(open_decoder)
    state = [0]
    passed = state[0]
    per_trip = size * max(1, READ_CHUNK // size)
    try:
        while not stopped.is_set():
            items = await asyncio.to_thread(shard.take, decoder, per_trip, state)
            if items:
                for start in range(0, len(items), size):
                    if stopped.is_set():
                        return
                    yield SourceBatch(items=items[start : start + size])
                continue
            if not loop or state[0] == passed:
                break
            passed = state[0]
            if on_close is not None:
                await asyncio.to_thread(on_close)
            decoder = await asyncio.to_thread(open_decoder)
    finally:
        if on_close is not None:
            await asyncio.to_thread(on_close)


class StreamSource:
    """A source read as one byte stream (a file, an S3 object): the decoder opens it lazily in
    a worker thread, batches come from `batches_from`, there is nothing to commit, and `stop`
    ends it after the current batch. Subclasses open and close the stream."""

    shard: ShardFilter

    def __init__(self, *, shard: ShardFilter, loop: bool = False) -> None:
        self.shard = shard
        self.loop = loop
        self._stopped = threading.Event()

    def _open_decoder(self) -> Iterator[Decoded]:
        raise NotImplementedError

    def _close_stream(self) -> None:
        raise NotImplementedError

    def batches(self, size: int) -> AsyncIterator[SourceBatch]:
        """Batches of the stream's records (this shard's only)."""
        return batches_from(
            self._open_decoder,
            size=size,
            shard=self.shard,
            stopped=self._stopped,
            on_close=self._close_stream,
            loop=self.loop,
        )

    async def commit(self, batch: SourceBatch) -> None:
        """Nothing to commit for a stream read from its start."""

    def stop(self) -> None:
        """Stop after the current batch."""
        self._stopped.set()

    async def close(self) -> None:
        """Close the stream if still open."""
        await asyncio.to_thread(self._close_stream)
