"""LightGBM models (the `lightgbm` extra): a Booster from its text model file.

Loading reads the file (I/O) with `Booster(model_file=...)` (LightGBM's own text format,
never a pickle); scoring is `Booster.predict` on the float64 feature matrix (native code, on
the event loop). The objective, read from the model file's header, decides the outputs
(`models.boosters`). LightGBM's native log lines go to our log at debug level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import structlog

from scoring_service.config import ModelConfig
from scoring_service.errors import ModelLoadError
from scoring_service.models.base import import_extra
from scoring_service.models.boosters import BoosterModel, Kind

log = structlog.get_logger("scoring_service.models.lightgbm")


def _kind(objective: str) -> Kind:
    if objective == "binary":
        return "binary"
    if objective in ("multiclass", "multiclassova"):
        return "multiclass"
    return "value"


def objective_of(path: Path) -> str:
    """The objective's name from the header of a LightGBM model file (`objective=binary
    sigmoid:1`); the header ends where the first tree starts."""
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("objective="):
                words = line.removeprefix("objective=").split()
                return words[0] if words else ""
            if line.startswith("Tree="):
                break
    return ""


class _Logger:
    """Receives LightGBM's native log lines (`register_logger`)."""

    def info(self, msg: str) -> None:
        if msg.strip():
            log.debug("lightgbm_log", message=msg.strip())

    def warning(self, msg: str) -> None:
        if msg.strip():
            log.debug("lightgbm_log", message=msg.strip())


class LightGBMModel(BoosterModel):
    """A LightGBM Booster."""

    platform = "lightgbm"

    def __init__(self, config: ModelConfig, path: Path) -> None:
        lgb = import_extra(config.name, "lightgbm", "lightgbm")
        lgb.register_logger(_Logger())
        try:
            booster = lgb.Booster(model_file=str(path))
        except Exception as exc:
            raise ModelLoadError(
                config.name,
                f"lightgbm cannot load {path.name} (a LightGBM text model file, "
                f"Booster.save_model): {type(exc).__name__}: {str(exc).strip()}",
            ) from exc
        objective = objective_of(path)
        kind = _kind(objective)
        self.booster = booster
        super().__init__(
            config,
            names=[str(n) for n in booster.feature_name()],
            count=int(booster.num_feature()),
            objective=objective or "unknown",
            kind=kind,
            classes=2 if kind == "binary" else int(booster.num_model_per_iteration()),
        )

    def _raw(self, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        result: np.ndarray[Any, Any] = self.booster.predict(x)
        return result
