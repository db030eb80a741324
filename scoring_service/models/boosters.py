"""What the gradient-boosted tree runtimes (XGBoost, LightGBM) share: the feature order, what
the objective says about the outputs, and turning the booster's raw output into the answer.

No I/O (the subclasses load their files). A booster's output depends on its objective:

- a binary classifier (XGBoost `binary:logistic`, LightGBM `binary`) gives P(class 1):
  the answer is `{"prediction": 0|1, "proba_0": 1 - p, "proba_1": p}`;
- a multi-class classifier with probabilities (XGBoost `multi:softprob`, LightGBM
  `multiclass`, `multiclassova`) gives `[rows, k]`: `prediction` is the most probable class
  index, `proba_<i>` each class's probability;
- anything else (regression, ranking, XGBoost `multi:softmax`, `binary:hinge`, raw margins)
  gives `{"prediction": value}` as the booster computes it (a list per row for a
  multi-target model).

Features are numbers (floats; a nullable field's null is a missing value, NaN, which both
libraries route natively). Their order is `schema.input` when declared (its length must equal
the booster's feature count), else the booster's own feature names. Every row is scored from
the trees alone, so concurrent requests are scored together (`coalesce`).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Literal

import numpy as np

from scoring_service.config import FieldSpec, ModelConfig
from scoring_service.errors import ModelLoadError
from scoring_service.models.matrix import NUMERIC_FIELDS, MatrixModel

Kind = Literal["binary", "multiclass", "value"]


def feature_fields(config: ModelConfig, names: list[str], count: int) -> list[FieldSpec]:
    """The model's input fields: `schema.input`, else the booster's feature names as doubles."""
    schema = config.schema_
    if schema and schema.input:
        fields = list(schema.input)
        if len(fields) != count:
            raise ModelLoadError(
                config.name,
                f"the booster takes {count} features, schema.input declares {len(fields)}",
            )
        wrong = [f.name for f in fields if f.type not in NUMERIC_FIELDS]
        if wrong:
            raise ModelLoadError(
                config.name,
                f"a booster takes numbers: schema.input field(s) {', '.join(wrong)} are not "
                "boolean, int, long, float or double",
            )
        return fields
    if len(names) != count:
        names = [f"f{i}" for i in range(count)]
    return [FieldSpec(name=n, type="double") for n in names]


class BoosterModel(MatrixModel):
    """A gradient-boosted tree ensemble; subclasses load it and give `_raw(x)`."""

    def __init__(
        self,
        config: ModelConfig,
        *,
        names: list[str],
        count: int,
        objective: str,
        kind: Kind,
        classes: int,
    ) -> None:
        fields = feature_fields(config, names, count)
        labels = list(range(classes)) if kind != "value" else None
        super().__init__(config, fields=fields, classes=labels, has_proba=kind != "value")
        self.objective = objective
        self.kind = kind
        if kind == "value":
            self._prediction_datatype = "FP64"
        self.coalesce = self._fast

    @abstractmethod
    def _raw(self, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The booster's own prediction for a float64 matrix (transformed by its objective)."""

    def _predict_arrays(self, x: np.ndarray[Any, Any]) -> tuple[Any, Any]:
        raw = self._raw(np.asarray(x, dtype=np.float64))
        if self.kind == "value":
            return raw.astype(np.float64), None
        if self.kind == "binary":
            p = raw.reshape(-1).astype(np.float64)
            proba = np.column_stack([1.0 - p, p])
        else:
            proba = raw.astype(np.float64).reshape(x.shape[0], -1)
        return proba.argmax(axis=1), proba

    def parameters(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "objective": self.objective,
            "outputs": self.kind,
            "classes": len(self.classes),
            "coalesce": self.coalesce,
        }
