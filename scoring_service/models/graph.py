"""Models that are a graph of named tensors in and out: ONNX sessions and TensorFlow
SavedModel signatures. The records and OIP paths they share.

No I/O: a subclass loads its graph, describes its inputs and outputs as metadata tensors
(`-1` for a variable dimension) and runs a feed (`_run`). Tensor inference feeds request
inputs to the graph inputs of the same name (numeric inputs are cast to the graph's element
type). Records scoring builds the graph input(s) from the records: one matrix input
`[rows, fields]` in `schema.input` order, or one column per graph input named like a record
field (a `[rows, k]` input takes a list of k values per record). Each graph output becomes a
field of the result record.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np
import orjson

from common.fields import FieldType
from scoring_service.config import FieldSpec, ModelConfig
from scoring_service.errors import InvalidInputError, ModelLoadError
from scoring_service.models.base import LoadedModel
from scoring_service.protocol import Datatype, MetadataTensor, RequestInput, ResponseOutput
from scoring_service.records import Record, Result, make_checker
from scoring_service.tensors import NUMPY_DTYPES, decode_input, encode_output

FIELD_TYPES: dict[str, FieldType] = {
    "BOOL": "boolean",
    "UINT8": "int",
    "UINT16": "int",
    "INT8": "int",
    "INT16": "int",
    "INT32": "int",
    "UINT32": "long",
    "UINT64": "long",
    "INT64": "long",
    "FP16": "float",
    "FP32": "float",
    "FP64": "double",
    "BYTES": "string",
}
"""The record field type of each tensor datatype (for inputs without `schema.input`)."""


def as_json(value: Any) -> Any:
    """A plain JSON value for one row of an output (numpy values, maps, bytes as text)."""
    if isinstance(value, np.ndarray):
        return as_json(value.tolist())
    if isinstance(value, np.generic):
        return as_json(value.item())
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


class GraphModel(LoadedModel):
    """A graph of named input and output tensors; see the module docstring."""

    def __init__(
        self, config: ModelConfig, *, inputs: list[MetadataTensor], outputs: list[MetadataTensor]
    ) -> None:
        super().__init__(config)
        self.inputs = inputs
        self.outputs = outputs
        self.input_types: dict[str, Datatype] = {n.name: n.datatype for n in inputs}
        self.output_names = [n.name for n in outputs]
        fields = [f.name for f in self.input_fields or []]
        names = [n.name for n in inputs]
        self.matrix_input: str | None = None
        self.matrix_fields: list[str] = []
        if len(inputs) == 1 and fields and names[0] not in fields:
            width = inputs[0].shape[-1] if inputs[0].shape else None
            if width is not None and width >= 0 and width != len(fields):
                raise ModelLoadError(
                    config.name,
                    f"input '{names[0]}' takes {width} columns, "
                    f"schema.input declares {len(fields)}",
                )
            self.matrix_input = names[0]
            self.matrix_fields = fields
        elif (
            not fields
            and len(inputs) == 1
            and len(inputs[0].shape) >= 2
            and inputs[0].shape[-1] != 1
        ):
            raise ModelLoadError(
                config.name,
                f"input '{names[0]}' is a matrix: declare schema.input to give the column order",
            )
        columns = all(len(n.shape) <= 1 or n.shape[1:] == [1] for n in inputs)
        if self.matrix_input is None and self.input_fields is None and columns:
            # Every input is one value per row: they are the record's fields, checked.
            self.input_fields = [
                FieldSpec(name=n.name, type=FIELD_TYPES[n.datatype]) for n in inputs
            ]
            self.checker = make_checker(self.input_fields)

    @abstractmethod
    def _run(self, feed: dict[str, np.ndarray[Any, Any]], wanted: list[str]) -> list[Any]:
        """The values of the `wanted` outputs (in that order) for a feed of every input."""

    def parameters(self) -> dict[str, Any]:
        return {"records_input": "matrix" if self.matrix_input else "columns"}

    def _feed(self, name: str, array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        datatype = self.input_types[name]
        if datatype == "BYTES":
            if array.dtype.kind not in "OUS":
                raise InvalidInputError(f"input '{name}' takes BYTES")
            return array.astype(object)
        if array.dtype.kind not in "biuf":
            raise InvalidInputError(f"input '{name}' takes {datatype}, got strings")
        return array.astype(NUMPY_DTYPES[datatype], copy=False)

    def _score_batch(self, rows: list[Record]) -> list[Result]:
        feed: dict[str, np.ndarray[Any, Any]] = {}
        if self.matrix_input is not None:
            fields = self.matrix_fields
            matrix = np.array([[row[f] for f in fields] for row in rows])
            feed[self.matrix_input] = self._feed(self.matrix_input, matrix)
        else:
            for node in self.inputs:
                if any(node.name not in row for row in rows):
                    raise ValueError(f"field '{node.name}' is missing")
                column = np.array([row[node.name] for row in rows])
                if len(node.shape) >= 2:
                    column = column.reshape(len(rows), -1)
                feed[node.name] = self._feed(node.name, column)
        results = self._run(feed, self.output_names)
        names = self.output_names
        for name, out in zip(names, results, strict=True):
            rows_out = len(out) if hasattr(out, "__len__") and np.ndim(out) != 0 else None
            if rows_out != len(rows):
                raise ValueError(
                    f"output '{name}' does not have one row per record ({rows_out} for "
                    f"{len(rows)}): score this model with infer"
                )
        return [
            {name: as_json(out[i]) for name, out in zip(names, results, strict=True)}
            for i in range(len(rows))
        ]

    def infer(self, inputs: list[RequestInput], wanted: list[str] | None) -> list[ResponseOutput]:
        by_name = {t.name: t for t in inputs}
        unknown = [n for n in by_name if n not in self.input_types]
        if unknown:
            raise InvalidInputError(
                f"unknown input(s) {', '.join(unknown)}; the model takes "
                f"{', '.join(self.input_types)}"
            )
        feed = {}
        for name in self.input_types:
            if name not in by_name:
                raise InvalidInputError(f"input '{name}' is missing")
            feed[name] = self._feed(name, decode_input(by_name[name]))
        out_names = self.output_names
        if wanted is not None:
            bad = [w for w in wanted if w not in out_names]
            if bad:
                raise InvalidInputError(
                    f"unknown output(s) {', '.join(bad)}; the model has: {', '.join(out_names)}"
                )
        try:
            results = self._run(feed, wanted or out_names)
        except Exception as exc:
            raise InvalidInputError(
                f"{self.platform} rejected the inputs: {type(exc).__name__}: {exc}"
            ) from exc
        outputs = []
        for name, value in zip(wanted or out_names, results, strict=True):
            if isinstance(value, np.ndarray) and value.dtype.kind != "O":
                outputs.append(encode_output(name, value))
            elif isinstance(value, np.ndarray):  # strings (str or bytes): BYTES
                outputs.append(encode_output(name, value, "BYTES"))
            else:  # sequence of maps: one JSON object per row, as BYTES
                array = np.empty(len(value), dtype=object)
                array[:] = [orjson.dumps(as_json(v)).decode() for v in value]
                outputs.append(encode_output(name, array, "BYTES"))
        return outputs

    def input_tensors(self) -> list[MetadataTensor]:
        return list(self.inputs)

    def output_tensors(self) -> list[MetadataTensor]:
        return list(self.outputs)
