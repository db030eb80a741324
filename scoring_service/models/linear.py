"""Known linear scikit-learn pipelines scored as numpy arithmetic on their fitted coefficients.

No I/O. A pipeline of scalers (StandardScaler, RobustScaler, MinMaxScaler, MaxAbsScaler)
ending in a linear model (LogisticRegression, LinearRegression, Ridge, Lasso, ElasticNet) is
compiled into the same numpy operations scikit-learn performs, in the same order, without its
per-call machinery (`validate_data`, `check_is_fitted`, feature-name and tag checks: about
nine tenths of a `predict_proba` call at batch 256). `compile_linear` returns None for any
other estimator.

The compiled scorer is used only after `verify` found its results bit-for-bit equal to
scikit-learn's on a check batch (`np.array_equal`, exact, not within a tolerance); it takes a
C-ordered finite float64 matrix, as the fast path builds, and returns what
`SklearnModel._predict_arrays` returns: `(prediction, probabilities or None)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]
Scorer = Callable[[Array], tuple[Array, Array | None]]
Step = Callable[[Array], Array]

SCALERS = {"StandardScaler", "RobustScaler", "MinMaxScaler", "MaxAbsScaler"}
REGRESSORS = {"LinearRegression", "Ridge", "Lasso", "ElasticNet"}
CLASSIFIERS = {"LogisticRegression"}


def _name(estimator: Any) -> str:
    kind = type(estimator)
    return kind.__name__ if kind.__module__.startswith("sklearn.") else ""


def _float64(value: Any) -> Array | None:
    array = np.asarray(value)
    return array if array.dtype == np.float64 else None


def _scaler(step: Any) -> Step | None:
    """The in-place arithmetic of a fitted scaler's `transform` (on a copy, as its
    `copy=True` default does)."""
    name = _name(step)
    if name in ("StandardScaler", "RobustScaler"):
        center, scaling = (
            (step.with_mean, step.with_std)
            if name == "StandardScaler"
            else (step.with_centering, step.with_scaling)
        )
        mean = (
            _float64(step.mean_ if name == "StandardScaler" else step.center_) if center else None
        )
        scale = _float64(step.scale_) if scaling else None
        if (center and mean is None) or (scaling and scale is None):
            return None

        def standard(x: Array) -> Array:
            x = x.copy()
            if mean is not None:
                x -= mean
            if scale is not None:
                x /= scale
            return x

        return standard
    if name == "MinMaxScaler":
        factor, offset = _float64(step.scale_), _float64(step.min_)
        if factor is None or offset is None:
            return None
        low, high = (float(v) for v in step.feature_range)
        clip = bool(step.clip)

        def min_max(x: Array) -> Array:
            x = x.copy()
            x *= factor
            x += offset
            if clip:
                np.clip(x, low, high, out=x)
            return x

        return min_max
    if name == "MaxAbsScaler":
        divisor = _float64(step.scale_)
        if divisor is None:
            return None
        clip = bool(getattr(step, "clip", False))

        def max_abs(x: Array) -> Array:
            x = x.copy()
            x /= divisor
            if clip:
                np.clip(x, -1.0, 1.0, out=x)
            return x

        return max_abs
    return None


def _decision(model: Any) -> Step | None:
    """`X @ coef_.T + intercept_`, raveled when there is one column (as scikit-learn's
    `decision_function` / `predict`)."""
    coef, intercept = _float64(model.coef_), np.asarray(model.intercept_)
    if coef is None or coef.ndim not in (1, 2) or intercept.dtype.kind not in "fi":
        return None
    if _name(model) in CLASSIFIERS:
        coef_t = coef.T

        def scores(x: Array) -> Array:
            s: Array = x @ coef_t + intercept
            return s.reshape(-1) if s.ndim > 1 and s.shape[1] == 1 else s

        return scores
    if coef.ndim == 1:
        return lambda x: x @ coef + intercept
    coef_t = coef.T
    return lambda x: x @ coef_t + intercept


def _softmax(scores: Array) -> Array:
    """scikit-learn's `softmax(copy=False)`: max subtracted, exp in place, divided by the sum."""
    scores -= scores.max(axis=1).reshape(-1, 1)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1).reshape(-1, 1)
    return scores


def _final(model: Any) -> Scorer | None:
    name = _name(model)
    decision = _decision(model) if name in REGRESSORS | CLASSIFIERS else None
    if decision is None:
        return None
    if name in REGRESSORS:
        return lambda x: (decision(x), None)
    classes = np.asarray(model.classes_)
    if classes.ndim != 1 or len(classes) < 2:
        return None
    if len(classes) == 2:
        from scipy.special import expit  # type: ignore[import-untyped]

        def binary(x: Array) -> tuple[Array, Array | None]:
            p = decision(x)
            if p.ndim != 1:
                raise ValueError("a binary logistic regression with several score columns")
            p = expit(p, out=p)
            proba = np.stack([1 - p, p], axis=1)
            return classes[proba.argmax(axis=1)], proba

        return binary

    def multinomial(x: Array) -> tuple[Array, Array | None]:
        proba = _softmax(decision(x))
        return classes[proba.argmax(axis=1)], proba

    return multinomial


def compile_linear(estimator: Any) -> Scorer | None:
    """The numpy scorer of a known linear pipeline (or bare linear model), else None."""
    steps = getattr(estimator, "steps", None)
    if steps is not None and _name(estimator) != "Pipeline":
        return None
    parts = [step for _, step in steps] if steps else [estimator]
    parts = [p for p in parts if p is not None and p != "passthrough"]
    if not parts:
        return None
    try:
        transforms = [_scaler(p) if _name(p) in SCALERS else None for p in parts[:-1]]
        final = _final(parts[-1])
    except (AttributeError, TypeError, ValueError):  # an unexpected fitted state
        return None
    if final is None or any(t is None for t in transforms):
        return None
    chain = [t for t in transforms if t is not None]

    def score(x: Array) -> tuple[Array, Array | None]:
        for transform in chain:
            x = transform(x)
        return final(x)

    return score


def check_batches(n_features: int, center: Array | None, spread: Array | None) -> list[Array]:
    """Deterministic C-ordered float64 matrices to compare a compiled scorer with
    scikit-learn: one row, then 257 rows around the fitted data's centre and spread (plus
    zeros, far-out and tiny values)."""
    rng = np.random.default_rng(20261202)
    mid = center if center is not None else np.zeros(n_features)
    width = spread if spread is not None else np.ones(n_features)
    many = mid + rng.standard_normal((250, n_features)) * width
    extremes = np.vstack(
        [
            np.zeros(n_features),
            mid + 1e6 * width,
            mid - 1e6 * width,
            np.full(n_features, 1e-300),
            mid + 50 * width,
            mid - 50 * width,
            rng.standard_normal(n_features) * 1e3,
        ]
    )
    return [np.ascontiguousarray(many[:1]), np.ascontiguousarray(np.vstack([many, extremes]))]


def fitted_range(estimator: Any) -> tuple[Array | None, Array | None]:
    """The centre and spread of the data the first step was fitted on, when it knows them."""
    steps = getattr(estimator, "steps", None)
    first = steps[0][1] if steps else estimator
    mean, scale = getattr(first, "mean_", None), getattr(first, "scale_", None)
    if _name(first) == "StandardScaler" and mean is not None and scale is not None:
        return np.asarray(mean, dtype=np.float64), np.asarray(scale, dtype=np.float64)
    low, span = getattr(first, "data_min_", None), getattr(first, "data_range_", None)
    if low is not None and span is not None:
        low, span = np.asarray(low, dtype=np.float64), np.asarray(span, dtype=np.float64)
        return low + span / 2, span
    return None, None


def verify(scorer: Scorer, reference: Scorer, batches: list[Array]) -> str | None:
    """None when `scorer` gives exactly `reference`'s predictions and probabilities (same
    dtype, shape and bits) on every batch; else why not."""
    for x in batches:
        try:
            got = scorer(x.copy())
        except Exception as exc:
            return f"the numpy scorer raised {type(exc).__name__}: {exc}"
        try:
            want = reference(x.copy())
        except Exception as exc:
            return f"scikit-learn raised {type(exc).__name__} on a check batch: {exc}"
        for label, a, b in (("prediction", got[0], want[0]), ("probabilities", got[1], want[1])):
            if a is None and b is None:
                continue
            a, b = np.asarray(a), np.asarray(b)
            if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
                return f"its {label} differ from scikit-learn's on a check batch of {len(x)} rows"
    return None
