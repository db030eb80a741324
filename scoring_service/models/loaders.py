"""Choosing the model class for a model type and loading it from a local file.

Reads files (I/O). Every failure is a `ModelLoadError` with the reason in one sentence.
"""

from __future__ import annotations

from pathlib import Path

from scoring_service.config import ModelConfig
from scoring_service.errors import ModelLoadError
from scoring_service.models.base import LoadedModel


def load_model(config: ModelConfig, path: Path) -> LoadedModel:
    """Load the model file at `path` as `config.type` says."""
    if config.type == "python":
        from scoring_service.models.python import PythonModel

        return PythonModel(config, path)
    if config.type == "sklearn":
        from scoring_service.models.sklearn import SklearnModel

        return SklearnModel(config, path)
    if config.type == "onnx":
        from scoring_service.models.onnx import OnnxModel

        return OnnxModel(config, path)
    raise ModelLoadError(config.name, f"type '{config.type}' is not served by this server")
