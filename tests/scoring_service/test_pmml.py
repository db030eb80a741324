"""The PMML runtime in a real `tekscore serve-model` process (JPMML on a JVM): records answers
and OIP `infer` (through tritonclient's HTTP client) equal to jpmml_evaluator's own in-process
evaluation of the same documents; inputs and outputs from the data dictionary and output
fields; a value the document refuses is that record's `$error`; missing values treated as the
document says; bad input answered 4xx; a broken document refused at load with JPMML's reason.
Skipped only when the `pmml` extra is not installed."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from tritonclient.utils import InferenceServerException

from tests.scoring_service.conftest import Server, wait_until, write_config
from tests.scoring_service.runtimes import (
    IRIS_FEATURES,
    RISK_PMML,
    iris_pmml,
    reference,
    triton_client,
    triton_infer,
)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("jpmml_evaluator") is None,
    reason="the pmml extra is not installed (pip install 'tekscore[pmml]')",
)

RISK_RECORDS = [
    {"colour": "red", "size": 3},
    {"colour": "blue", "size": 12},
    {"colour": "red", "size": None},
    {"colour": "blue"},
    {"colour": "red", "size": 9},
]


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("pmml")
    iris, sklearn_model = iris_pmml(folder)
    risk = folder / "risk.pmml"
    risk.write_text(RISK_PMML)
    broken = folder / "broken.pmml"
    broken.write_text(RISK_PMML.replace("</RegressionModel>", ""))
    return {"folder": folder, "iris": iris, "risk": risk, "broken": broken, "lr": sklearn_model}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, documents: dict[str, Any]) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("pmml-server")
    config = write_config(
        folder / "service.yaml",
        [
            {"name": "iris", "type": "pmml", "uri": documents["iris"].as_uri()},
            {"name": "risk", "type": "pmml", "uri": documents["risk"].as_uri()},
        ],
        runtime="pmml",
    )
    srv = Server(["--config", str(config)], folder / "server.log")
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


def iris_records(count: int) -> list[dict[str, float]]:
    data = load_iris().data
    return [dict(zip(IRIS_FEATURES, row, strict=True)) for row in data[:count].tolist()]


def test_records_equal_jpmml_in_process(server: Server, documents: dict[str, Any]) -> None:
    records = iris_records(150)
    answer = server.client.post("/v2/models/iris/records", json=records)
    assert answer.status_code == 200, answer.text
    expected = reference(
        documents["folder"],
        {
            "kind": "pmml",
            "model": str(documents["iris"]),
            "columns": IRIS_FEATURES,
            "records": records,
        },
    )
    assert answer.json() == expected
    # And the document is the scikit-learn model it was written from.
    x = np.array([[r[f] for f in IRIS_FEATURES] for r in records])
    lr = documents["lr"]
    assert [r["species"] for r in answer.json()] == lr.predict(x).tolist()
    served = np.array([[r[f"proba_{c}"] for c in lr.classes_] for r in answer.json()])
    np.testing.assert_allclose(served, lr.predict_proba(x), rtol=0, atol=1e-12)


def test_invalid_and_missing_values(server: Server, documents: dict[str, Any]) -> None:
    records = [*RISK_RECORDS, {"colour": "green", "size": 1}, {"colour": "red", "size": 2.5}]
    answer = server.client.post("/v2/models/risk/records", json=records).json()
    expected = reference(
        documents["folder"],
        {
            "kind": "pmml",
            "model": str(documents["risk"]),
            "columns": ["colour", "size"],
            "records": records[:6],
        },
    )
    assert answer[:6] == expected
    assert [r["risk"] for r in answer[:5]] == [10.5, 24.5, 24.5, 20.5, 22.5]
    assert [r["high"] for r in answer[:5]] == [False, True, True, True, True]
    assert answer[5]["$error"].startswith("scoring failed: ")
    assert "green" in answer[5]["$error"] and "colour" in answer[5]["$error"]
    assert answer[6] == {"$error": "field 'size': expected long, got number"}


def test_metadata_from_the_data_dictionary(server: Server) -> None:
    client = triton_client(server.url)
    try:
        meta = client.get_model_metadata("risk")
        iris = client.get_model_metadata("iris")
    finally:
        client.close()
    assert meta["platform"] == "pmml"
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("colour", "BYTES"),
        ("size", "INT64"),
    ]
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [
        ("risk", "FP64"),
        ("predicted", "FP64"),
        ("high", "BOOL"),
    ]
    assert meta["parameters"]["function"] == "regression"
    assert meta["parameters"]["model"] == "RegressionModel"
    assert iris["parameters"]["targets"] == ["species"]
    assert [o["name"] for o in iris["outputs"]] == [
        "species",
        "proba_setosa",
        "proba_versicolor",
        "proba_virginica",
    ]


def test_infer_through_tritonclient(server: Server, documents: dict[str, Any]) -> None:
    records = iris_records(40)
    expected = reference(
        documents["folder"],
        {
            "kind": "pmml",
            "model": str(documents["iris"]),
            "columns": IRIS_FEATURES,
            "records": records,
        },
    )
    client = triton_client(server.url)
    try:
        assert client.is_model_ready("iris")
        inputs = {f: (np.array([r[f] for r in records]), "FP64") for f in IRIS_FEATURES}
        got = triton_infer(client, "iris", inputs, ["species", "proba_virginica"])
        risk = triton_infer(
            client,
            "risk",
            {
                "colour": (np.array(["red", "blue"], dtype=object), "BYTES"),
                "size": (np.array([3, 12], dtype=np.int64), "INT64"),
            },
            ["risk", "high"],
        )
    finally:
        client.close()
    assert got["species"].tolist() == [e["species"] for e in expected]
    client = triton_client(server.url)
    try:  # one [rows, fields] tensor holds the input fields in their order
        matrix = np.array([[r[f] for f in IRIS_FEATURES] for r in records])
        as_matrix = triton_infer(client, "iris", {"x": (matrix, "FP64")}, ["proba_virginica"])
        with pytest.raises(InferenceServerException, match=r"expected shape \[rows, 4\]"):
            triton_infer(client, "iris", {"x": (matrix[:, :3].copy(), "FP64")}, ["species"])
    finally:
        client.close()
    assert as_matrix["proba_virginica"].tolist() == [e["proba_virginica"] for e in expected]
    assert got["proba_virginica"].tolist() == [e["proba_virginica"] for e in expected]
    assert risk["risk"].tolist() == [10.5, 24.5]
    assert risk["high"].tolist() == [False, True]


def test_bad_input_is_a_client_error(server: Server) -> None:
    client = triton_client(server.url)
    try:
        with pytest.raises(InferenceServerException, match="row 0: scoring failed"):
            triton_infer(
                client,
                "risk",
                {
                    "colour": (np.array(["green"], dtype=object), "BYTES"),
                    "size": (np.array([1], dtype=np.int64), "INT64"),
                },
                ["risk"],
            )
        with pytest.raises(InferenceServerException, match="field 'size': expected long"):
            triton_infer(
                client,
                "risk",
                {
                    "colour": (np.array(["red"], dtype=object), "BYTES"),
                    "size": (np.array([1.5]), "FP64"),
                },
                ["risk"],
            )
    finally:
        client.close()
    assert server.client.post("/v2/models/risk/records", json={"a": 1}).status_code == 422
    assert server.client.post("/v2/models/nope/records", json=[]).status_code == 404


def test_broken_document_fails_its_load(
    tmp_path: Path, documents: dict[str, Any], start_server: Any
) -> None:
    config = write_config(
        tmp_path / "service.yaml",
        [{"name": "broken", "type": "pmml", "uri": documents["broken"].as_uri()}],
    )
    srv = start_server(["--config", str(config)]).wait_live()
    reasons: dict[str, str] = {}

    def failed() -> bool:
        reasons.update(srv.client.get("/v2/health/ready").json().get("models", {}))
        return reasons.get("broken", "loading") != "loading"

    wait_until(failed, what="the broken document to fail its load")
    assert reasons["broken"].startswith("JPMML cannot load broken.pmml: ")
    answer = srv.client.post("/v2/models/broken/records", json=[{}])
    assert answer.status_code == 503
    assert "JPMML cannot load broken.pmml" in answer.json()["error"]
