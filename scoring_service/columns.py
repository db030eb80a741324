"""Column results encoded straight into a records JSON body, without per-record dicts.

Pure functions, no I/O. A vectorised model's answer is a few columns (numpy arrays); turning
them into one dict per record and then encoding the list costs more than the model itself at
batch 256. Here each column is encoded once by orjson (its values' JSON text, exactly what
`orjson.dumps(column.tolist())` writes), and the records are assembled by interleaving those
texts with the constant `{"key":` parts in C-level list operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def number_tokens(column: np.ndarray[Any, Any]) -> list[bytes] | None:
    """The JSON text of each value of a 1-D bool/int/float column, or None for other columns.

    Floats are widened to float64 first, so the text is that of the Python float `tolist()`
    gives (a float32 would otherwise print as its own shortest form)."""
    if column.ndim != 1 or column.dtype.kind not in "biuf":
        return None
    if column.dtype.kind == "f" and column.dtype != np.float64:
        column = column.astype(np.float64)
    if column.shape[0] == 0:
        return []
    text = orjson.dumps(np.ascontiguousarray(column), option=_NUMPY)
    return text[1:-1].split(b",")


class RecordsEncoder:
    """Encodes equal-length columns of JSON texts as `[{"k0": v0, "k1": v1, ...}, ...]`."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("RecordsEncoder needs at least one key")
        self.keys = list(keys)
        self._heads = [
            (b"{" if j == 0 else b",") + orjson.dumps(key) + b":" for j, key in enumerate(keys)
        ]
        self._width = 2 * len(keys) + 1

    def __call__(self, columns: Sequence[list[bytes]]) -> bytes:
        if len(columns) != len(self.keys):
            raise ValueError(f"expected {len(self.keys)} columns, got {len(columns)}")
        n = len(columns[0])
        if any(len(c) != n for c in columns):
            raise ValueError("columns of different lengths")
        if n == 0:
            return b"[]"
        width = self._width
        out = [b"},"] * (n * width)
        for j, column in enumerate(columns):
            out[2 * j :: width] = [self._heads[j]] * n
            out[2 * j + 1 :: width] = column
        out[0] = b"[" + out[0]
        out[-1] = b"}]"
        return b"".join(out)
