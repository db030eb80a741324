"""TensorFlow models (the `tensorflow` extra): a SavedModel's serving signature, tensors in and
out (`models.graph`).

Loading imports TensorFlow and reads the SavedModel folder (I/O); scoring calls the signature's
concrete function (TensorFlow's own threads, off the event loop). The signature is
`serving_default`, else the model's only one. Its keyword inputs are the model's inputs and
its outputs (a dict) the model's outputs, with their dtypes and shapes (`None` = -1).
TensorFlow's native logging is turned down to errors unless `TF_CPP_MIN_LOG_LEVEL` is set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from scoring_service.config import ModelConfig
from scoring_service.errors import ModelLoadError
from scoring_service.models.base import import_extra
from scoring_service.models.graph import GraphModel
from scoring_service.protocol import Datatype, MetadataTensor

TF_DATATYPES: dict[str, Datatype] = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "string": "BYTES",
}
SIGNATURE = "serving_default"


def _tensor(name: str, spec: Any) -> MetadataTensor | None:
    datatype = TF_DATATYPES.get(spec.dtype.name)
    if datatype is None:
        return None
    shape = [-1 if d is None else int(d) for d in spec.shape.as_list()]
    return MetadataTensor(name=name, datatype=datatype, shape=shape)


class TensorFlowModel(GraphModel):
    """A SavedModel's serving signature."""

    platform = "tensorflow"
    inline = False

    def __init__(self, config: ModelConfig, path: Path) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        tf = import_extra(config.name, "tensorflow", "tensorflow")
        if not (path / "saved_model.pb").is_file():
            raise ModelLoadError(
                config.name, f"{path.name} is not a SavedModel folder (no saved_model.pb in it)"
            )
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as exc:
            raise ModelLoadError(
                config.name, f"tensorflow cannot load the SavedModel: {type(exc).__name__}: {exc}"
            ) from exc
        signatures = dict(loaded.signatures)
        if SIGNATURE in signatures:
            self.signature = SIGNATURE
        elif len(signatures) == 1:
            self.signature = next(iter(signatures))
        else:
            known = ", ".join(sorted(signatures)) or "none"
            raise ModelLoadError(
                config.name, f"the SavedModel has no '{SIGNATURE}' signature (it has: {known})"
            )
        self._loaded = loaded  # the function's variables live as long as the loaded object
        self._function = signatures[self.signature]
        self._tf = tf
        args, kwargs = self._function.structured_input_signature
        if args:
            raise ModelLoadError(
                config.name, f"signature '{self.signature}' takes positional inputs"
            )
        specs = {**kwargs}
        outputs = self._function.structured_outputs
        if not isinstance(outputs, dict):
            raise ModelLoadError(
                config.name, f"signature '{self.signature}' does not return named outputs"
            )
        tensors: dict[str, list[MetadataTensor]] = {"input": [], "output": []}
        for kind, named in (("input", specs), ("output", outputs)):
            for name, spec in named.items():
                tensor = _tensor(name, spec)
                if tensor is None:
                    raise ModelLoadError(
                        config.name, f"{kind} '{name}' has dtype {spec.dtype.name}, not served"
                    )
                tensors[kind].append(tensor)
        self._dtypes = {name: spec.dtype for name, spec in specs.items()}
        super().__init__(config, inputs=tensors["input"], outputs=tensors["output"])

    def parameters(self) -> dict[str, Any]:
        return {**super().parameters(), "signature": self.signature}

    def _run(self, feed: dict[str, np.ndarray[Any, Any]], wanted: list[str]) -> list[Any]:
        tf = self._tf
        args = {name: tf.constant(value, dtype=self._dtypes[name]) for name, value in feed.items()}
        result = self._function(**args)
        return [result[name].numpy() for name in wanted]
