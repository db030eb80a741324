"""The journey of one input record through a flow, and the counters kept about input records.

Pure data, no I/O. An `Item` is one input record: its ordinal in the source, the original (what
a dead-letter entry carries), its current results (a score step may turn one record into 0..n),
and its fate: failed (a `RecordError`: reason and step), filtered, or still going. `Counters`
hold `records_in == records_out + records_failed + records_filtered` once every item is settled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scoring_flow.errors import DecodeError, RecordError
from scoring_flow.types import Record


@dataclass(slots=True)
class Item:
    """One input record on its way through the steps."""

    ordinal: int
    original: Any
    results: list[Record] = field(default_factory=list)
    failure: RecordError | None = None
    filtered: bool = False

    @classmethod
    def of(cls, ordinal: int, record: Record) -> Item:
        """A fresh item whose one result is the record itself."""
        return cls(ordinal, record, [record])  # positional: the hot path of every source

    @classmethod
    def bad(cls, ordinal: int, raw: Any, *, reason: str, step: str) -> Item:
        """An item that failed before any step (undecodable input)."""
        return cls(
            ordinal=ordinal, original=raw, results=[], failure=DecodeError(reason, step=step)
        )

    @property
    def alive(self) -> bool:
        """Whether later steps still process this item."""
        return self.failure is None and not self.filtered

    def fail(self, error: RecordError) -> None:
        """Mark the item failed (the first failure wins) and drop its results."""
        if self.failure is None:
            self.failure = error
        self.results = []


def dead_letter_entry(item: Item, *, flow: str) -> Record:
    """The record written to the dead-letter channel for a failed item."""
    failure = item.failure
    reason, step = (failure.reason, failure.step) if failure else ("unknown", "unknown")
    return {"record": item.original, "reason": reason, "step": step, "flow": flow}


@dataclass(slots=True)
class Counters:
    """Counts of input records by fate."""

    records_in: int = 0
    records_out: int = 0
    records_failed: int = 0
    records_filtered: int = 0

    def settle(self, items: list[Item]) -> None:
        """Count a finished batch (its records were already counted in)."""
        for item in items:
            if item.failure is not None:
                self.records_failed += 1
            elif item.filtered:
                self.records_filtered += 1
            else:
                self.records_out += 1

    @property
    def pending(self) -> int:
        """Records read but not yet settled."""
        return self.records_in - self.records_out - self.records_failed - self.records_filtered

    def as_dict(self) -> dict[str, int]:
        """The four counters by name."""
        return {
            "records_in": self.records_in,
            "records_out": self.records_out,
            "records_failed": self.records_failed,
            "records_filtered": self.records_filtered,
        }
