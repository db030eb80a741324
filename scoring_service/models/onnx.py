"""ONNX models on onnxruntime (the `onnx` extra): tensors in and out (`models.graph`).

Loading creates a CPU inference session from a file (I/O); scoring is native code on the
event loop. Sequence-of-map outputs (such as skl2onnx's `output_probability`) become one
object per row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scoring_service.config import ModelConfig
from scoring_service.errors import ModelLoadError
from scoring_service.models.base import import_extra
from scoring_service.models.graph import GraphModel
from scoring_service.protocol import Datatype, MetadataTensor

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


def _shape(dims: list[Any]) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in dims]


class OnnxModel(GraphModel):
    """An onnxruntime inference session."""

    platform = "onnxruntime"
    inline = True

    def __init__(self, config: ModelConfig, path: Path) -> None:
        ort = import_extra(config.name, "onnxruntime", "onnx")
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadError(
                config.name, f"onnxruntime cannot load {path.name}: {type(exc).__name__}: {exc}"
            ) from exc
        for node in self.session.get_inputs():
            if node.type not in ONNX_DATATYPES:
                raise ModelLoadError(config.name, f"input '{node.name}' has type {node.type}")
        super().__init__(
            config,
            inputs=[
                MetadataTensor(name=n.name, datatype=ONNX_DATATYPES[n.type], shape=_shape(n.shape))
                for n in self.session.get_inputs()
            ],
            outputs=[
                MetadataTensor(
                    name=n.name, datatype=ONNX_DATATYPES.get(n.type, "BYTES"), shape=_shape(n.shape)
                )
                for n in self.session.get_outputs()
            ],
        )

    def _run(self, feed: dict[str, np.ndarray[Any, Any]], wanted: list[str]) -> list[Any]:
        return list(self.session.run(wanted, feed))
