"""tekscore's scoring service: an Open Inference Protocol V2 server for python, scikit-learn
and ONNX models, plus a records endpoint (`tekscore serve-model`).

Stands alone: imports nothing else of ours. Importing the package does no I/O; the public
surface is the app factory, the configuration shapes and the error base class.
"""

from __future__ import annotations

from scoring_service.app import create_app
from scoring_service.config import ModelConfig, ServeSettings, ServeSpec, ServiceConfig
from scoring_service.errors import ScoringServiceError

__all__ = [
    "ModelConfig",
    "ScoringServiceError",
    "ServeSettings",
    "ServeSpec",
    "ServiceConfig",
    "create_app",
]
