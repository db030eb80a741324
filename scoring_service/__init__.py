"""tekscore's scoring service: an Open Inference Protocol V2 server for python, scikit-learn
and ONNX models, plus a records endpoint (`tekscore serve-model`).

Stands alone: imports nothing else of ours. Importing the package does no I/O and loads
nothing: the public surface (the app factory, the configuration shapes and the error base
class) is imported on first use, so `tekscore --help`, which registers `serve-model` from
`scoring_service.cli`, does not load FastAPI or the model libraries.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOME = {
    "create_app": "scoring_service.app",
    "ModelConfig": "scoring_service.config",
    "ServeSettings": "scoring_service.config",
    "ServeSpec": "scoring_service.config",
    "ServiceConfig": "scoring_service.config",
    "ScoringServiceError": "scoring_service.errors",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(import_module(_HOME[name]), name)
    raise AttributeError(f"module 'scoring_service' has no attribute {name!r}")
