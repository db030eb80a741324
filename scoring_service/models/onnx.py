"""ONNX models on onnxruntime (the `onnx` extra): tensors in and out.

Loading creates an inference session from a file (I/O); scoring is native code.
Tensor inference feeds request inputs to the session inputs of the same name (numeric inputs
are cast to the session's element type). Records scoring builds the session input(s) from the
records: one matrix input `[rows, fields]` in `schema.input` order, or one column per session
input named like a record field. Each session output becomes a field of the result record
(sequence-of-map outputs such as skl2onnx's `output_probability` become objects).
"""

from __future__ import annotations

from pathlib import Path
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

ONNX_DATATYPES: dict[str, Datatype] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


_FIELD_TYPES: dict[str, FieldType] = {
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


def _shape(dims: list[Any]) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in dims]


def _value(value: Any) -> Any:
    """A plain JSON value for one row of an output."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _value(v) for k, v in value.items()}
    return value


class OnnxModel(LoadedModel):
    """An onnxruntime inference session."""

    platform = "onnxruntime"
    inline = True

    def __init__(self, config: ModelConfig, path: Path) -> None:
        super().__init__(config)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelLoadError(
                config.name, "onnxruntime is not installed (pip install 'tekscore[onnx]')"
            ) from exc
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadError(
                config.name, f"onnxruntime cannot load {path.name}: {type(exc).__name__}: {exc}"
            ) from exc
        self.inputs = self.session.get_inputs()
        self.outputs = self.session.get_outputs()
        for node in self.inputs:
            if node.type not in ONNX_DATATYPES:
                raise ModelLoadError(config.name, f"input '{node.name}' has type {node.type}")
        self.input_types: dict[str, Datatype] = {
            n.name: ONNX_DATATYPES[n.type] for n in self.inputs
        }
        fields = [f.name for f in self.input_fields or []]
        names = [n.name for n in self.inputs]
        self.matrix_input: str | None = None
        if len(self.inputs) == 1 and fields and names[0] not in fields:
            width = self.inputs[0].shape[-1] if self.inputs[0].shape else None
            if isinstance(width, int) and width != len(fields):
                raise ModelLoadError(
                    config.name,
                    f"input '{names[0]}' takes {width} columns, "
                    f"schema.input declares {len(fields)}",
                )
            self.matrix_input = names[0]
            self.matrix_fields = fields
        elif not fields and len(self.inputs) == 1 and len(self.inputs[0].shape) >= 2:
            width = self.inputs[0].shape[-1]
            if width != 1:
                raise ModelLoadError(
                    config.name,
                    f"input '{names[0]}' is a matrix: "
                    "declare schema.input to give the column order",
                )

        if self.matrix_input is None and self.input_fields is None:
            self.input_fields = [
                FieldSpec(name=n.name, type=_FIELD_TYPES[self.input_types[n.name]])
                for n in self.inputs
            ]
            self.checker = make_checker(self.input_fields)

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

    def _run(self, feed: dict[str, np.ndarray[Any, Any]], wanted: list[str] | None) -> list[Any]:
        return list(self.session.run(wanted, feed))

    def _score_batch(self, rows: list[Record]) -> list[Result]:
        feed: dict[str, np.ndarray[Any, Any]] = {}
        if self.matrix_input is not None:
            fields = self.matrix_fields
            matrix = np.array([[row[f] for f in fields] for row in rows])
            feed[self.matrix_input] = self._feed(self.matrix_input, matrix)
        else:
            for node in self.inputs:
                column = np.array([row[node.name] for row in rows])
                if len(node.shape) >= 2:
                    column = column.reshape(len(rows), -1)
                feed[node.name] = self._feed(node.name, column)
        results = self._run(feed, None)
        names = [o.name for o in self.outputs]
        return [
            {name: _value(out[i]) for name, out in zip(names, results, strict=True)}
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
        out_names = [o.name for o in self.outputs]
        if wanted is not None:
            bad = [w for w in wanted if w not in out_names]
            if bad:
                raise InvalidInputError(
                    f"unknown output(s) {', '.join(bad)}; the model has: {', '.join(out_names)}"
                )
        try:
            results = self._run(feed, wanted)
        except Exception as exc:
            raise InvalidInputError(f"onnxruntime rejected the inputs: {exc}") from exc
        outputs = []
        for name, value in zip(wanted or out_names, results, strict=True):
            if isinstance(value, np.ndarray):
                outputs.append(encode_output(name, value))
            else:  # sequence of maps: one JSON object per row, as BYTES
                array = np.empty(len(value), dtype=object)
                array[:] = [orjson.dumps(_value(v)).decode() for v in value]
                outputs.append(encode_output(name, array, "BYTES"))
        return outputs

    def input_tensors(self) -> list[MetadataTensor]:
        return [
            MetadataTensor(name=n.name, datatype=ONNX_DATATYPES[n.type], shape=_shape(n.shape))
            for n in self.inputs
        ]

    def output_tensors(self) -> list[MetadataTensor]:
        return [
            MetadataTensor(
                name=n.name, datatype=ONNX_DATATYPES.get(n.type, "BYTES"), shape=_shape(n.shape)
            )
            for n in self.outputs
        ]
