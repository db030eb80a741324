"""Open Inference Protocol V2 over real HTTP: server metadata and health, model metadata,
sklearn `infer` (matrix and column inputs) equal to in-process predictions, BYTES round trip
through a python model, ONNX models (skl2onnx iris, and an Identity graph round-tripping BOOL,
INT8, UINT16, INT32, INT64, FP16, FP32, FP64 tensors exactly)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from tests.scoring_service.conftest import FEATURES, IRIS_INPUT, Server, write_config

ROUND_TRIP = {
    "BOOL": [True, False, True, True],
    "INT8": [-128, 0, 5, 127],
    "UINT16": [0, 1, 65535, 7],
    "INT32": [-(2**31), 2**31 - 1, 0, 1],
    "INT64": [-(2**63), 2**63 - 1, 0, 42],
    "FP16": [0.5, -2.0, 1024.0, 0.25],
    "FP32": [0.5, -1.25, 3.0, 1e10],
    "FP64": [0.1, -2.5e-300, 1e300, 3.14159],
}


def test_server_metadata_and_health(main_server: Server) -> None:
    meta = main_server.client.get("/v2").json()
    assert meta["name"] == "tekscore-scoring-service"
    assert "records" in meta["extensions"]
    assert main_server.client.get("/v2/health/live").status_code == 200
    assert main_server.client.get("/v2/health/ready").json() == {"ready": True}
    assert main_server.client.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}


def test_sklearn_metadata(main_server: Server) -> None:
    meta = main_server.client.get("/v2/models/iris").json()
    assert meta["platform"] == "sklearn"
    assert [i["name"] for i in meta["inputs"]] == FEATURES
    assert meta["outputs"][0] == {"name": "prediction", "datatype": "BYTES", "shape": [-1]}
    assert [o["name"] for o in meta["outputs"][1:]] == [
        "proba_setosa",
        "proba_versicolor",
        "proba_virginica",
    ]


def test_sklearn_infer_matrix_and_columns(
    main_server: Server, iris_model_path: Path, iris_records: list[dict[str, Any]]
) -> None:
    model = joblib.load(iris_model_path)
    x = np.array([[r[f] for f in FEATURES] for r in iris_records[:40]])
    expected = model.predict(x).tolist()
    matrix = {
        "id": "req-1",
        "inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP64", "data": x.tolist()}],
    }
    answer = main_server.client.post("/v2/models/iris/infer", json=matrix).json()
    assert answer["model_name"] == "iris" and answer["id"] == "req-1"
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["prediction"]["datatype"] == "BYTES"
    assert outputs["prediction"]["shape"] == [40]
    assert outputs["prediction"]["data"] == expected
    np.testing.assert_allclose(
        outputs["proba_virginica"]["data"], model.predict_proba(x)[:, 2], rtol=1e-12
    )
    columns = {
        "inputs": [
            {"name": f, "shape": [40], "datatype": "FP32", "data": x[:, j].tolist()}
            for j, f in enumerate(FEATURES)
        ],
        "outputs": [{"name": "prediction"}],
    }
    answer = main_server.client.post("/v2/models/iris/infer", json=columns).json()
    assert [o["name"] for o in answer["outputs"]] == ["prediction"]
    assert answer["outputs"][0]["data"] == model.predict(x.astype(np.float32)).tolist()


def test_bytes_and_numbers_round_trip_through_a_python_model(main_server: Server) -> None:
    body = {
        "inputs": [
            {"name": "s", "shape": [3], "datatype": "BYTES", "data": ["a", "ü", ""]},
            {"name": "n", "shape": [3, 1], "datatype": "INT64", "data": [[1], [2], [3]]},
        ],
        "outputs": [{"name": "s"}, {"name": "n"}],
    }
    answer = main_server.client.post("/v2/models/vec/infer", json=body).json()
    assert answer["outputs"] == [
        {"name": "s", "shape": [3], "datatype": "BYTES", "data": ["a", "ü", ""]},
        {"name": "n", "shape": [3], "datatype": "INT64", "data": [1, 2, 3]},
    ]


@pytest.fixture(scope="module")
def onnx_server(tmp_path_factory: pytest.TempPathFactory, iris_model_path: Path) -> Any:
    import onnx
    from onnx import TensorProto, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    folder = tmp_path_factory.mktemp("onnx")
    model = joblib.load(iris_model_path)
    iris_onnx = convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, 4]))],
        options={id(model.steps[-1][1]): {"zipmap": False}},
        target_opset=17,
    )
    (folder / "iris.onnx").write_bytes(iris_onnx.SerializeToString())
    types = {
        "BOOL": TensorProto.BOOL,
        "INT8": TensorProto.INT8,
        "UINT16": TensorProto.UINT16,
        "INT32": TensorProto.INT32,
        "INT64": TensorProto.INT64,
        "FP16": TensorProto.FLOAT16,
        "FP32": TensorProto.FLOAT,
        "FP64": TensorProto.DOUBLE,
    }
    nodes = [helper.make_node("Identity", [f"in_{k}"], [f"out_{k}"]) for k in types]
    graph = helper.make_graph(
        nodes,
        "identity",
        [helper.make_tensor_value_info(f"in_{k}", t, [None]) for k, t in types.items()],
        [helper.make_tensor_value_info(f"out_{k}", t, [None]) for k, t in types.items()],
    )
    identity = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    identity.ir_version = 8
    onnx.checker.check_model(identity)
    (folder / "identity.onnx").write_bytes(identity.SerializeToString())
    config = write_config(
        folder / "onnx.yaml",
        [
            {
                "name": "iris-onnx",
                "type": "onnx",
                "uri": (folder / "iris.onnx").as_uri(),
                "schema": {"input": IRIS_INPUT},
            },
            {"name": "identity", "type": "onnx", "uri": (folder / "identity.onnx").as_uri()},
        ],
    )
    from tests.scoring_service.conftest import Server as ServerCls

    server = ServerCls(["--config", str(config)], folder / "server.log")
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def test_onnx_identity_round_trips_datatypes(onnx_server: Server) -> None:
    body = {
        "inputs": [
            {"name": f"in_{k}", "shape": [4], "datatype": k, "data": v}
            for k, v in ROUND_TRIP.items()
        ]
    }
    answer = onnx_server.client.post("/v2/models/identity/infer", json=body)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    for k, v in ROUND_TRIP.items():
        out = outputs[f"out_{k}"]
        assert out["datatype"] == k and out["shape"] == [4]
        if k == "FP32":
            np.testing.assert_allclose(out["data"], v, rtol=1e-7)  # type: ignore[call-overload]
        else:
            assert out["data"] == v
    meta = onnx_server.client.get("/v2/models/identity").json()
    assert {"name": "in_INT8", "datatype": "INT8", "shape": [-1]} in meta["inputs"]


def test_onnx_iris_records_and_infer_match_sklearn(
    onnx_server: Server, iris_model_path: Path, iris_records: list[dict[str, Any]]
) -> None:
    model = joblib.load(iris_model_path)
    x = np.array([[r[f] for f in FEATURES] for r in iris_records], dtype=np.float32)
    expected = model.predict(x)
    results = onnx_server.client.post("/v2/models/iris-onnx/records", json=iris_records).json()
    labels = np.array([r["label"] for r in results])
    assert (labels == expected).mean() > 0.98  # float32 inside ONNX vs float64 in sklearn
    assert len(results[0]["probabilities"]) == 3
    body = {
        "inputs": [{"name": "input", "shape": [len(x), 4], "datatype": "FP32", "data": x.tolist()}]
    }
    answer = onnx_server.client.post("/v2/models/iris-onnx/infer", json=body).json()
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["label"]["data"] == labels.tolist()
    assert outputs["probabilities"]["shape"] == [len(x), 3]
