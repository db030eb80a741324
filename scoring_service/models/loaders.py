"""Choosing the model class for a model type and loading it from a local file.

Reads files (I/O). Every failure is a `ModelLoadError` with the reason in one sentence. Each
model class is imported only when a model of its type is loaded, so a runtime's library (an
extra such as `pmml` or `tensorflow`) is needed only by the services that serve it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from scoring_service.config import ModelConfig
from scoring_service.errors import ModelLoadError
from scoring_service.models.base import LoadedModel

MODEL_CLASSES: dict[str, tuple[str, str]] = {
    "python": ("scoring_service.models.python", "PythonModel"),
    "sklearn": ("scoring_service.models.sklearn", "SklearnModel"),
    "onnx": ("scoring_service.models.onnx", "OnnxModel"),
    "xgboost": ("scoring_service.models.xgboost", "XGBoostModel"),
    "lightgbm": ("scoring_service.models.lightgbm", "LightGBMModel"),
    "pmml": ("scoring_service.models.pmml", "PmmlModel"),
    "tensorflow": ("scoring_service.models.tensorflow", "TensorFlowModel"),
}
"""The module and class serving each model type."""


def load_model(config: ModelConfig, path: Path) -> LoadedModel:
    """Load the model file (or folder) at `path` as `config.type` says."""
    where = MODEL_CLASSES.get(config.type)
    if where is None:
        raise ModelLoadError(config.name, f"type '{config.type}' is not served by this server")
    factory: Callable[[ModelConfig, Path], LoadedModel] = getattr(
        importlib.import_module(where[0]), where[1]
    )
    return factory(config, path)
