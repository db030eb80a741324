"""XGBoost models (the `xgboost` extra): a Booster from its native `.json` or `.ubj` file.

Loading reads the file (I/O) with `Booster(model_file=...)`, never a pickle; scoring is
`inplace_predict` on the float64 feature matrix (native code, on the event loop). The
objective (from the booster's saved configuration) decides the outputs (`models.boosters`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from scoring_service.config import ModelConfig
from scoring_service.errors import ModelLoadError
from scoring_service.models.base import import_extra
from scoring_service.models.boosters import BoosterModel, Kind

NATIVE_SUFFIXES = (".json", ".ubj")


def _kind(objective: str) -> Kind:
    if objective == "binary:logistic":
        return "binary"
    if objective == "multi:softprob":
        return "multiclass"
    return "value"


class XGBoostModel(BoosterModel):
    """An XGBoost Booster."""

    platform = "xgboost"

    def __init__(self, config: ModelConfig, path: Path) -> None:
        xgb = import_extra(config.name, "xgboost", "xgboost")
        if path.suffix.lower() not in NATIVE_SUFFIXES:
            raise ModelLoadError(
                config.name,
                f"an xgboost model is the booster's own .json or .ubj file "
                f"(Booster.save_model), got {path.name}; pickles are not loaded",
            )
        try:
            booster = xgb.Booster(model_file=str(path))
            learner = json.loads(booster.save_config())["learner"]
        except Exception as exc:
            raise ModelLoadError(
                config.name, f"xgboost cannot load {path.name}: {_first_line(exc)}"
            ) from exc
        objective = str(learner["objective"]["name"])
        kind = _kind(objective)
        classes = int(learner["learner_model_param"].get("num_class", "0") or 0)
        self.booster = booster
        super().__init__(
            config,
            names=list(booster.feature_names or []),
            count=int(booster.num_features()),
            objective=objective,
            kind=kind,
            classes=2 if kind == "binary" else classes,
        )

    def _raw(self, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        # validate_features compares DataFrame column names; we pass a bare matrix in order.
        result: np.ndarray[Any, Any] = self.booster.inplace_predict(x, validate_features=False)
        return result


def _first_line(exc: BaseException) -> str:
    """XGBoost's errors carry a native stack trace after their first line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
