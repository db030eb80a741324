"""Every caller mistake gets a clear 4xx `{"error": ...}` (never a 500) and the server stays
alive: bad JSON, wrong body shapes, oversized bodies, unknown models, bad tensors (datatype,
shape, values, names), unknown outputs and routes."""

from __future__ import annotations

import pytest

from tests.scoring_service.conftest import Server

RECORD = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"", 400, "empty body"),
        (b"[{", 400, "not valid JSON"),
        (b'{"a": 1}', 422, "JSON list of records"),
        (b"[1, 2]", 422, "record [0] must be an object, got integer"),
        (b'[{"a": 1}, "x"]', 422, "record [1] must be an object, got string"),
        (b"null", 422, "got null"),
    ],
)
def test_records_body_errors(main_server: Server, body: bytes, status: int, fragment: str) -> None:
    response = main_server.client.post(
        "/v2/models/iris/records", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert fragment in response.json()["error"]


def test_oversized_body_is_413(main_server: Server) -> None:
    big = [RECORD] * 5000  # ~400 kB, limit is 200 kB
    response = main_server.client.post("/v2/models/iris/records", json=big)
    assert response.status_code == 413
    assert "200000 bytes" in response.json()["error"]


def test_oversized_chunked_body_is_413(main_server: Server) -> None:
    def chunks():  # no content-length: the limit is enforced while streaming
        yield b"["
        for _ in range(5000):
            yield b'{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4},'
        yield b"{}]"

    response = main_server.client.post("/v2/models/iris/records", content=chunks())
    assert response.status_code == 413


def test_unknown_model_is_404(main_server: Server) -> None:
    for path in ["/v2/models/nope/records", "/v2/models/nope/infer"]:
        response = main_server.client.post(path, json=[RECORD])
        assert response.status_code == 404
        assert "unknown model 'nope'" in response.json()["error"]
    assert main_server.client.get("/v2/models/nope").status_code == 404
    assert main_server.client.get("/v2/models/nope/ready").status_code == 404


def _infer(server: Server, body: object) -> tuple[int, str]:
    response = server.client.post("/v2/models/iris/infer", json=body)
    return response.status_code, response.json().get("error", "")


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ([{"name": "x", "shape": [1, 4], "datatype": "FP99", "data": [1, 2, 3, 4]}], "datatype"),
        ([{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3]}], "needs 4"),
        ([{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}], "[rows, 4]"),
        ([{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, "a", 3, 4]}], "'a'"),
        ([{"name": "x", "shape": [1, 4], "datatype": "INT8", "data": [1, 2, 3, 300]}], "INT8"),
        ([{"name": "x", "shape": [1, 4], "datatype": "INT32", "data": [1, 2, 3, 4.5]}], "4.5"),
        ([{"name": "x", "shape": [1, 4], "datatype": "BYTES", "data": ["a"] * 4}], "numbers"),
        ([{"name": "sepal_length", "shape": [1], "datatype": "FP64", "data": [1]}], "missing"),
        ([{"shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}], "inputs[0].name"),
        ([], "inputs"),
    ],
)
def test_infer_tensor_errors(main_server: Server, inputs: list[object], fragment: str) -> None:
    status, error = _infer(main_server, {"inputs": inputs})
    assert status == 422
    assert fragment in error


def test_infer_unknown_output_and_not_json(main_server: Server) -> None:
    body = {
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}],
        "outputs": [{"name": "nope"}],
    }
    status, error = _infer(main_server, body)
    assert status == 422 and "unknown output(s) nope" in error
    response = main_server.client.post("/v2/models/iris/infer", content=b"{oops")
    assert response.status_code == 422
    assert "error" in response.json()


def test_unknown_route_and_method(main_server: Server) -> None:
    assert main_server.client.get("/v2/nothing").json() == {"error": "Not Found"}
    response = main_server.client.get("/v2/models/iris/records")
    assert response.status_code == 405
    assert "error" in response.json()


def test_server_still_alive_and_scoring_after_bad_inputs(main_server: Server) -> None:
    assert main_server.client.get("/v2/health/live").status_code == 200
    response = main_server.client.post("/v2/models/iris/records", json=[RECORD])
    assert response.json()[0]["prediction"] == "setosa"
