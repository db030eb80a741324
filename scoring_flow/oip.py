"""Records <-> Open Inference Protocol V2 tensors, for `protocol: v2` services (MLServer, Triton).

Pure logic, no I/O. Packing rules (docs/scoring-flow.md): when the model's metadata declares one
input, or declares none, the records become one 2-D tensor whose columns are the payload fields
in order (the score step's `inputs` mapping order); when it declares several inputs, each input
takes the record field of the same name as a 1-D tensor. Datatypes come from the metadata, else
from the values (BOOL, INT64, FP64, BYTES). Each output tensor gives every row a field of its
name: a scalar for 1-D or [n, 1] outputs, a list for [n, k].
"""

from __future__ import annotations

import math
from typing import Any

from scoring_flow.types import Record


def _datatype(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def _cast(values: list[Any], datatype: str) -> list[Any]:
    if datatype.startswith("FP"):
        return [float(v) for v in values]
    if datatype.startswith(("INT", "UINT")):
        return [int(v) for v in values]
    if datatype == "BYTES":
        return [v if isinstance(v, str) else str(v) for v in values]
    return values


def infer_request(payloads: list[Record], metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The infer request body for `payloads` (raises KeyError/ValueError on unusable records)."""
    declared = list((metadata or {}).get("inputs") or [])
    n = len(payloads)
    if len(declared) > 1:
        inputs = []
        for spec in declared:
            name = str(spec["name"])
            column = [p[name] for p in payloads]
            dtype = str(spec.get("datatype") or _datatype(column))
            inputs.append(
                {"name": name, "shape": [n], "datatype": dtype, "data": _cast(column, dtype)}
            )
        return {"inputs": inputs}
    columns = list(payloads[0]) if payloads else []
    flat = [p[c] for p in payloads for c in columns]
    name = str(declared[0]["name"]) if declared else "input-0"
    dtype = str(declared[0].get("datatype") or "") if declared else ""
    dtype = dtype or _datatype(flat)
    return {
        "inputs": [
            {
                "name": name,
                "shape": [n, len(columns)],
                "datatype": dtype,
                "data": _cast(flat, dtype),
            }
        ]
    }


def infer_rows(response: dict[str, Any], n: int) -> list[Record]:
    """One result record per input row from an infer response."""
    rows: list[Record] = [{} for _ in range(n)]
    for out in response.get("outputs") or []:
        name = str(out["name"])
        data = list(out.get("data") or [])
        shape = [int(s) for s in out.get("shape") or [len(data)]]
        width = math.prod(shape[1:]) if len(shape) > 1 else 1
        if len(data) != n * width:
            raise ValueError(f"output {name!r} has {len(data)} values for {n} rows")
        for i in range(n):
            rows[i][name] = data[i] if width == 1 else data[i * width : (i + 1) * width]
    return rows
