"""Type aliases and small value types shared by the flow's modules.

Pure data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]
"""One record: a JSON object."""


@dataclass(frozen=True, slots=True)
class BadRecord:
    """Input that could not be decoded into a record; it is dead-lettered as `raw`."""

    raw: Any
    reason: str
