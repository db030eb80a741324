"""scikit-learn models: a joblib/pickle estimator or pipeline, scored vectorised.

Loading unpickles a file (I/O); scoring is numpy. Records become one 2-D array in the feature
order (the model's `schema.input`, else the estimator's `feature_names_in_`); one `predict`
(and `predict_proba` when the estimator has it) per batch (`models.matrix`). Output record:
`{"prediction": value, "proba_<class>": p, ...}`.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from scoring_service.config import FieldSpec, ModelConfig
from scoring_service.errors import ModelLoadError
from scoring_service.models.linear import (
    Scorer,
    check_batches,
    compile_linear,
    fitted_range,
    verify,
)
from scoring_service.models.matrix import MatrixModel

log = structlog.get_logger("scoring_service.models.sklearn")

ARGMAX_ESTIMATORS = {
    "LogisticRegression",
    "DecisionTreeClassifier",
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "GaussianNB",
}
"""Final estimators whose `predict` is exactly `classes_[argmax(predict_proba)]`: for them one
`predict_proba` call gives both outputs."""
ROW_WISE_ESTIMATORS = {
    *ARGMAX_ESTIMATORS,
    "StandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "RobustScaler",
    "Normalizer",
    "Binarizer",
    "SimpleImputer",
    "LinearRegression",
    "Ridge",
    "Lasso",
    "ElasticNet",
    "DecisionTreeRegressor",
    "RandomForestRegressor",
    "ExtraTreesRegressor",
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
}
"""scikit-learn estimators (and pipeline steps) whose output for a row depends only on that
row and the fitted state: concurrent requests to a model made only of them are scored with
one call (`scoring_service.batching`). A user's own step (a FunctionTransformer, a custom
class) could look at the whole batch, so such pipelines are scored per request."""


def _row_wise(estimator: Any) -> bool:
    steps = getattr(estimator, "steps", None)
    parts = [step for _, step in steps] if steps else [estimator]
    return all(
        type(p).__module__.startswith("sklearn.") and type(p).__name__ in ROW_WISE_ESTIMATORS
        for p in parts
    )


def _final_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def _skip_checks() -> contextlib.AbstractContextManager[Any]:
    """scikit-learn settings for a matrix already known to be finite float64."""
    import sklearn

    context: contextlib.AbstractContextManager[Any] = sklearn.config_context(
        assume_finite=True, skip_parameter_validation=True
    )
    return context


def load_estimator(name: str, path: Path) -> Any:
    """Unpickle an estimator with joblib (which also reads plain pickles)."""
    import joblib

    try:
        estimator = joblib.load(path)
    except Exception as exc:
        raise ModelLoadError(
            name, f"cannot unpickle {path.name}: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(getattr(estimator, "predict", None)):
        raise ModelLoadError(name, f"{type(estimator).__name__} has no predict()")
    return estimator


class SklearnModel(MatrixModel):
    """A fitted scikit-learn estimator or pipeline."""

    platform = "sklearn"

    def __init__(self, config: ModelConfig, path: Path) -> None:
        estimator = load_estimator(config.name, path)
        schema = config.schema_
        names_in = getattr(estimator, "feature_names_in_", None)
        if schema and schema.input:
            fields = list(schema.input)
        elif names_in is not None:
            fields = [FieldSpec(name=str(n), type="double") for n in names_in]
        else:
            raise ModelLoadError(
                config.name,
                "the feature order is unknown: declare the model's schema.input, or fit the "
                "estimator on a DataFrame so that it has feature_names_in_",
            )
        n_in = getattr(estimator, "n_features_in_", None)
        if n_in is not None and n_in != len(fields):
            raise ModelLoadError(
                config.name,
                f"the estimator takes {n_in} features, the schema declares {len(fields)}",
            )
        classes = getattr(estimator, "classes_", None)
        super().__init__(
            config,
            fields=fields,
            classes=classes,
            has_proba=callable(getattr(estimator, "predict_proba", None)),
        )
        self.estimator = estimator
        final = _final_step(estimator)
        self.argmax = (
            self.has_proba
            and type(final).__name__ in ARGMAX_ESTIMATORS
            and np.asarray(classes).ndim == 1
        )
        self._classes_array = np.asarray(classes) if classes is not None else None
        self.coalesce = self._fast and _row_wise(estimator)
        if names_in is not None:
            # The estimator was fitted on a DataFrame; we give it arrays in the same order.
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
        self.scorer = "scikit-learn"
        self._numpy: Scorer | None = None
        if self._fast:
            self._numpy, why = self._compile()
            if self._numpy is not None:
                self.scorer = "numpy"
            log.info(
                "sklearn_scoring_path",
                model=config.name,
                estimator=type(estimator).__name__,
                path=self.scorer,
                reason=why,
            )

    def _compile(self) -> tuple[Scorer | None, str]:
        """The numpy scorer of a known linear pipeline when its results equal scikit-learn's
        exactly on the check batches (`models.linear`), and why it is (not) used."""
        scorer = compile_linear(self.estimator)
        if scorer is None:
            return None, "not a known linear pipeline: scored by scikit-learn"
        center, spread = fitted_range(self.estimator)
        batches = check_batches(len(self.features), center, spread)
        mismatch = verify(scorer, self._sklearn_arrays, batches)
        if mismatch is not None:
            return None, f"numpy scorer not used: {mismatch}"
        return scorer, "known linear pipeline, numpy results equal scikit-learn's bit for bit"

    def parameters(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "estimator": type(self.estimator).__name__,
            "coalesce": self.coalesce,
            "scorer": self.scorer,
        }

    def _predict_arrays(self, x: np.ndarray[Any, Any]) -> tuple[Any, Any]:
        """(predictions, probabilities or None). For a finite float64 matrix (the fast path)
        scikit-learn's own finiteness check and parameter validation are skipped: the first is
        done here in one numpy call, the second was done at fit time; results are the same.
        A known linear pipeline is then scored by its verified numpy scorer."""
        numpy = self._numpy
        fast = numpy is not None and x.dtype == np.float64 and x.flags.c_contiguous
        if fast and bool(np.isfinite(x).all()):
            assert numpy is not None
            return numpy(x)
        return self._sklearn_arrays(x)

    def _sklearn_arrays(self, x: np.ndarray[Any, Any]) -> tuple[Any, Any]:
        with self._config(x):
            if self.argmax:
                proba = self.estimator.predict_proba(x)
                assert self._classes_array is not None
                return self._classes_array[proba.argmax(axis=1)], proba
            prediction = self.estimator.predict(x)
            return prediction, self.estimator.predict_proba(x) if self.has_proba else None

    def _config(self, x: np.ndarray[Any, Any]) -> contextlib.AbstractContextManager[Any]:
        if x.dtype == np.float64 and bool(np.isfinite(x).all()):
            return _skip_checks()
        return contextlib.nullcontext()
