"""Known linear scikit-learn pipelines scored as numpy arithmetic (`models/linear.py`): the
answers are bit-for-bit scikit-learn's (in process, through the whole records path, for
classifiers with string and integer labels, binary and multiclass, and regressors), other
estimators stay with scikit-learn, a scorer that differs is refused, and the service says
which path serves each model (metadata and log)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import orjson
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    RobustScaler,
    StandardScaler,
)

from scoring_service.config import ModelConfig
from scoring_service.models.linear import check_batches, compile_linear, verify
from scoring_service.models.sklearn import SklearnModel
from tests.scoring_service.conftest import Server

IRIS, CANCER, DIABETES = load_iris(), load_breast_cancer(), load_diabetes()


def _case(name: str) -> tuple[Any, np.ndarray[Any, Any], Any]:
    """(unfitted estimator, X, y) of each supported shape."""
    iris_labels = np.asarray(IRIS.target_names)[IRIS.target]
    cases: dict[str, tuple[Any, Any, Any]] = {
        "iris-standard-logistic-str": (
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
            IRIS.data,
            iris_labels,
        ),
        "iris-minmax-clip-standard-logistic-int": (
            make_pipeline(MinMaxScaler(clip=True), StandardScaler(), LogisticRegression()),
            IRIS.data,
            IRIS.target,
        ),
        "cancer-maxabs-logistic-binary": (
            make_pipeline(MaxAbsScaler(), LogisticRegression(max_iter=5000)),
            CANCER.data,
            np.where(CANCER.target == 1, "benign", "malignant"),
        ),
        "cancer-bare-logistic-binary-int": (
            LogisticRegression(max_iter=5000),
            CANCER.data,
            CANCER.target,
        ),
        "diabetes-standard-nomean-linear": (
            make_pipeline(StandardScaler(with_mean=False), LinearRegression()),
            DIABETES.data,
            DIABETES.target,
        ),
        "diabetes-robust-ridge-2-outputs": (
            make_pipeline(RobustScaler(), Ridge()),
            DIABETES.data,
            np.c_[DIABETES.target, DIABETES.target * 2],
        ),
        "diabetes-standard-lasso": (
            make_pipeline(StandardScaler(), Lasso()),
            DIABETES.data,
            DIABETES.target,
        ),
        "diabetes-bare-elasticnet": (ElasticNet(), DIABETES.data, DIABETES.target),
    }
    estimator, x, y = cases[name]
    return estimator.fit(x, y), x, y


CASES = [
    "iris-standard-logistic-str",
    "iris-minmax-clip-standard-logistic-int",
    "cancer-maxabs-logistic-binary",
    "cancer-bare-logistic-binary-int",
    "diabetes-standard-nomean-linear",
    "diabetes-robust-ridge-2-outputs",
    "diabetes-standard-lasso",
    "diabetes-bare-elasticnet",
]


def _jittered(x: np.ndarray[Any, Any], rows: int, seed: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    picked = x[rng.integers(0, len(x), rows)]
    return np.ascontiguousarray(picked + rng.normal(0, 1, picked.shape) * x.std(axis=0) / 2)


@pytest.mark.parametrize("case", CASES)
def test_numpy_scorer_gives_scikit_learns_bits(case: str) -> None:
    estimator, x, _ = _case(case)
    scorer = compile_linear(estimator)
    assert scorer is not None
    for rows, seed in ((1, 1), (7, 2), (300, 3), (5000, 4)):
        batch = _jittered(x, rows, seed)
        prediction, proba = scorer(batch.copy())
        assert np.array_equal(prediction, estimator.predict(batch))
        assert prediction.dtype == estimator.predict(batch).dtype
        if hasattr(estimator, "predict_proba"):
            want = estimator.predict_proba(batch)
            assert proba is not None and proba.dtype == want.dtype
            assert np.array_equal(proba, want)  # exact, not approximately
        else:
            assert proba is None


def _served(tmp_path: Path, estimator: Any, n_features: int) -> SklearnModel:
    path = tmp_path / "model.joblib"
    joblib.dump(estimator, path)
    config = ModelConfig.model_validate(
        {
            "name": "m",
            "type": "sklearn",
            "uri": path.as_uri(),
            "schema": {"input": [{"name": f"f{i}", "type": "double"} for i in range(n_features)]},
        }
    )
    return SklearnModel(config, path)


@pytest.mark.parametrize("case", CASES)
def test_records_answers_through_numpy_equal_scikit_learns_bytes(case: str, tmp_path: Path) -> None:
    estimator, x, _ = _case(case)
    model = _served(tmp_path, estimator, x.shape[1])
    assert model.parameters()["scorer"] == "numpy"
    batch = _jittered(x, 257, 5)
    records = [{f"f{i}": float(v) for i, v in enumerate(row)} for row in batch]
    body, failed = model.score_records_json(records)
    assert failed == 0
    prediction = estimator.predict(batch)
    results: list[dict[str, Any]]
    if hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(batch)
        keys = ["prediction", *(f"proba_{c}" for c in estimator.classes_)]
        rows = zip(prediction.tolist(), *proba.T.tolist(), strict=True)
        results = [dict(zip(keys, row, strict=True)) for row in rows]
    else:
        results = [{"prediction": p} for p in prediction.tolist()]
    assert body == orjson.dumps(results)


def test_other_estimators_stay_with_scikit_learn(tmp_path: Path) -> None:
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(IRIS.data, IRIS.target)
    custom = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=1000))
    custom.fit(IRIS.data, IRIS.target)
    for estimator in (forest, custom):
        assert compile_linear(estimator) is None
        assert _served(tmp_path, estimator, 4).parameters()["scorer"] == "scikit-learn"


def test_a_scorer_whose_results_differ_is_refused() -> None:
    fitted, _, _ = _case("iris-standard-logistic-str")
    other = make_pipeline(StandardScaler(), LogisticRegression(C=0.01)).fit(
        IRIS.data, np.asarray(IRIS.target_names)[IRIS.target]
    )
    scorer, wrong = compile_linear(fitted), compile_linear(other)
    assert scorer is not None and wrong is not None
    batches = check_batches(4, IRIS.data.mean(axis=0), IRIS.data.std(axis=0))
    assert verify(scorer, scorer, batches) is None
    reason = verify(wrong, scorer, batches)
    assert reason is not None and "differ from scikit-learn's" in reason


def test_the_service_says_which_path_serves_the_model(main_server: Server) -> None:
    assert main_server.client.get("/v2/models/iris").json()["parameters"]["scorer"] == "numpy"
    events = [json.loads(line) for line in main_server.log().splitlines() if line.startswith("{")]
    paths = [e for e in events if e.get("event") == "sklearn_scoring_path"]
    assert [(e["model"], e["path"]) for e in paths] == [("iris", "numpy")]
    assert "bit for bit" in paths[0]["reason"]
