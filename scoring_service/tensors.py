"""Conversions between Open Inference Protocol tensors and numpy arrays.

Pure functions, no I/O. Decoding is strict: values must fit the declared datatype (no
silent truncation of 1.5 to INT32, no 300 in INT8, no strings in FP64) and the element count
must match the shape; every mistake raises `InvalidInputError` naming the tensor.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
import orjson

from scoring_service.errors import InvalidInputError
from scoring_service.protocol import Datatype, RequestInput, ResponseOutput

NUMPY_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}

_DATATYPE_OF_KIND_SIZE: dict[tuple[str, int], Datatype] = {
    ("b", 1): "BOOL",
    ("u", 1): "UINT8",
    ("u", 2): "UINT16",
    ("u", 4): "UINT32",
    ("u", 8): "UINT64",
    ("i", 1): "INT8",
    ("i", 2): "INT16",
    ("i", 4): "INT32",
    ("i", 8): "INT64",
    ("f", 2): "FP16",
    ("f", 4): "FP32",
    ("f", 8): "FP64",
}

FIELD_DATATYPES: dict[str, Datatype] = {
    "boolean": "BOOL",
    "int": "INT32",
    "long": "INT64",
    "float": "FP32",
    "double": "FP64",
    "string": "BYTES",
    "bytes": "BYTES",
}
"""The tensor datatype of each Avro primitive field type."""


def _flatten(data: list[Any]) -> list[Any]:
    """Row-major flattening of nested lists."""
    if not any(isinstance(x, list) for x in data):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for x in stack[-1]:
            if isinstance(x, list):
                stack.append(iter(x))
                break
            out.append(x)
        else:
            stack.pop()
    return out


def _value_check(datatype: str) -> tuple[Any, str]:
    """The predicate accepting JSON values of a datatype, and their plural name."""
    if datatype == "BOOL":
        return (lambda v: v is True or v is False), "booleans"
    if datatype == "BYTES":
        return (lambda v: type(v) is str), "strings"
    if datatype.startswith(("INT", "UINT")):
        return (lambda v: type(v) is int), "integers"
    return (lambda v: type(v) is float or type(v) is int), "numbers"


def _check_values(name: str, datatype: str, flat: list[Any]) -> None:
    """Reject JSON values of the wrong kind for the datatype, naming the first one."""
    ok, expected = _value_check(datatype)
    for value in flat:
        if not ok(value):
            raise InvalidInputError(
                f"input '{name}': datatype {datatype} takes {expected}, got {value!r}"
            )


def decode_input(tensor: RequestInput) -> np.ndarray[Any, Any]:
    """The numpy array of one request input, shaped as declared."""
    name, datatype = tensor.name, tensor.datatype
    if any(d < 0 for d in tensor.shape):
        raise InvalidInputError(f"input '{name}': shape {tensor.shape} has a negative dimension")
    flat = _flatten(tensor.data)
    count = math.prod(tensor.shape)
    if len(flat) != count:
        raise InvalidInputError(
            f"input '{name}': shape {tensor.shape} needs {count} elements, data has {len(flat)}"
        )
    _check_values(name, datatype, flat)
    try:
        array = np.array(flat, dtype=NUMPY_DTYPES[datatype])
    except (OverflowError, ValueError) as exc:
        raise InvalidInputError(
            f"input '{name}': value out of range for {datatype}: {exc}"
        ) from exc
    return array.reshape(tensor.shape)


def datatype_of(array: np.ndarray[Any, Any]) -> Datatype:
    """The protocol datatype for a numpy array (strings and objects are BYTES)."""
    return _DATATYPE_OF_KIND_SIZE.get((array.dtype.kind, array.dtype.itemsize), "BYTES")


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if isinstance(value, str) or value is None:
        return value
    return str(value)


def encode_output(
    name: str, array: np.ndarray[Any, Any], datatype: Datatype | None = None
) -> ResponseOutput:
    """A response output tensor from an array; `datatype` forces a cast when given."""
    if datatype is None:
        datatype = datatype_of(array)
    if datatype == "BYTES":
        data = [_text(v) for v in array.reshape(-1).tolist()]
    else:
        if datatype_of(array) != datatype:
            array = array.astype(NUMPY_DTYPES[datatype])
        data = array.reshape(-1).tolist()
    return ResponseOutput(name=name, shape=list(array.shape), datatype=datatype, data=data)


def column_array(values: list[Any], datatype: Datatype | None) -> np.ndarray[Any, Any]:
    """A 1-D array from per-row values (for outputs of record-based models)."""
    if datatype is not None:
        dtype = NUMPY_DTYPES[datatype]
        try:
            return np.array(values, dtype=dtype)
        except (TypeError, ValueError, OverflowError):
            pass
    try:
        array = np.array(values)
    except ValueError:
        array = np.empty(len(values), dtype=object)
        array[:] = values
    if array.dtype.kind in "biuf" and array.ndim >= 1:
        return array
    out = np.empty(len(values), dtype=object)
    out[:] = [v if isinstance(v, str) else _json_text(v) for v in values]
    return out


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
