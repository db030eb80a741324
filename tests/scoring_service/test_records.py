"""The records endpoint over real HTTP: sklearn predictions equal in-process ones, each python
convention (Racetrack perform, FastScore generator with 2 and 0 outputs, vectorised score),
per-record `$error` items that leave the other records scored, and the result order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np

from tests.scoring_service.conftest import FEATURES, Server


def test_sklearn_records_equal_in_process_predictions(
    main_server: Server, iris_model_path: Path, iris_records: list[dict[str, Any]]
) -> None:
    model = joblib.load(iris_model_path)
    x = np.array([[r[f] for f in FEATURES] for r in iris_records])
    expected = model.predict(x).tolist()
    proba = model.predict_proba(x)
    response = main_server.client.post("/v2/models/iris/records", json=iris_records)
    assert response.status_code == 200
    results = response.json()
    assert len(results) == len(iris_records)
    assert [r["prediction"] for r in results] == expected
    for j, cls in enumerate(model.classes_):
        got = np.array([r[f"proba_{cls}"] for r in results])
        np.testing.assert_allclose(got, proba[:, j], rtol=1e-12)


def test_sklearn_batch_of_one_and_empty_batch(main_server: Server) -> None:
    record = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}
    response = main_server.client.post("/v2/models/iris/records", json=[record])
    assert response.status_code == 200
    assert response.json()[0]["prediction"] == "virginica"
    assert main_server.client.post("/v2/models/iris/records", json=[]).json() == []


def test_invalid_records_get_errors_naming_the_field_and_others_are_scored(
    main_server: Server, iris_records: list[dict[str, Any]]
) -> None:
    good = iris_records[0]
    batch = [
        good,
        {k: v for k, v in good.items() if k != "petal_width"},
        {**good, "sepal_width": "3.5"},
        {**good, "sepal_length": None},
        {**good, "petal_length": True},
        good,
    ]
    response = main_server.client.post("/v2/models/iris/records", json=batch)
    assert response.status_code == 200
    results = response.json()
    assert len(results) == 6
    assert results[0]["prediction"] == results[5]["prediction"] == "setosa"
    assert results[1] == {"$error": "field 'petal_width' is missing"}
    assert results[2] == {"$error": "field 'sepal_width': expected double, got string"}
    assert "sepal_length" in results[3]["$error"] and "null" in results[3]["$error"]
    assert results[4] == {"$error": "field 'petal_length': expected double, got boolean"}


def test_racetrack_perform_one_output_per_record(main_server: Server) -> None:
    records = [{"x": 1.5, "y": 2}, {"x": 3}, {"x": -1}, {"x": "a"}, {"y": 1}]
    results = main_server.client.post("/v2/models/adder/records", json=records).json()
    assert results[0] == {"sum": 3.5, "double": 3.0}
    assert results[1] == {"sum": 3.0, "double": 6}
    assert results[2] == {"$error": "scoring failed: ValueError: x must not be negative"}
    assert results[3] == {"$error": "field 'x': expected double, got string"}
    assert results[4] == {"$error": "field 'x' is missing"}


def test_fastscore_generator_yields_two_none_and_errors(main_server: Server) -> None:
    records = [{"n": 2}, {"n": 0}, {"n": -1}, {"n": 1}]
    results = main_server.client.post("/v2/models/gen/records", json=records).json()
    assert results[0] == [{"i": 0, "of": 2}, {"i": 1, "of": 2}]
    assert results[1] == []
    assert results[2] == {"$error": "scoring failed: ValueError: n must be >= 0"}
    assert results[3] == [{"i": 0, "of": 1}]


def test_vectorised_score_is_one_call_per_batch(main_server: Server) -> None:
    records = [{"a": i, "s": str(i)} for i in range(50)]
    results = main_server.client.post("/v2/models/vec/records", json=records).json()
    assert results == [{"a": i, "s": str(i), "_batch": 50} for i in range(50)]


def test_vectorised_failure_is_isolated_to_the_failing_record(main_server: Server) -> None:
    records = [{"a": 1}, {"a": 2, "boom": True}, {"a": 3}]
    results = main_server.client.post("/v2/models/vec/records", json=records).json()
    assert results[0] == {"a": 1, "_batch": 1}
    assert results[1] == {"$error": "scoring failed: RuntimeError: boom"}
    assert results[2] == {"a": 3, "_batch": 1}


def test_metadata_reports_the_python_convention(main_server: Server) -> None:
    for name, convention in [("adder", "racetrack"), ("gen", "fastscore"), ("vec", "score")]:
        meta = main_server.client.get(f"/v2/models/{name}").json()
        assert meta["name"] == name
        assert meta["platform"] == "python"
        assert meta["parameters"]["convention"] == convention
    adder = main_server.client.get("/v2/models/adder").json()
    assert adder["inputs"] == [
        {"name": "x", "datatype": "FP64", "shape": [-1]},
        {"name": "y", "datatype": "FP64", "shape": [-1]},
    ]
