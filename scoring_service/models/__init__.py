"""Loaded models, one module per model type, behind one interface (`base.LoadedModel`).

Scoring is pure computation on the loaded object; loading (`load_model`) reads files.
"""

from __future__ import annotations

from scoring_service.models.base import LoadedModel
from scoring_service.models.loaders import load_model

__all__ = ["LoadedModel", "load_model"]
