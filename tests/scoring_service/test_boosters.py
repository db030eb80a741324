"""The XGBoost and LightGBM runtimes in a real `tekscore serve-model` process: binary,
3-class and regression boosters from their native files (`.json`, `.ubj`, LightGBM text);
records answers and OIP `infer` (through tritonclient's HTTP client) equal to the booster's own
in-process prediction; nulls of nullable features scored as missing values; metadata from the
booster; bad input answered 4xx; a pickle or a foreign file refused at load with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import lightgbm as lgb
import numpy as np
import pytest
import tritonclient.http as triton
import xgboost as xgb
from tritonclient.utils import InferenceServerException

from tests.scoring_service.conftest import Server, wait_until, write_config
from tests.scoring_service.runtimes import (
    FEATURES,
    booster_data,
    train_lightgbm,
    train_xgboost,
    triton_client,
    triton_infer,
)

KINDS = ["binary", "multiclass", "regression"]
MODELS = [f"xgb-{k}" for k in KINDS] + [f"lgb-{k}" for k in KINDS]
NULLABLE = [{"name": f, "type": "double", "nullable": True} for f in FEATURES]


@pytest.fixture(scope="module")
def boosters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("boosters")
    paths = {}
    for kind, suffix in zip(KINDS, [".json", ".ubj", ".json"], strict=True):
        paths[f"xgb-{kind}"] = train_xgboost(folder, kind, suffix)
        paths[f"lgb-{kind}"] = train_lightgbm(folder, kind)
    return paths


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, boosters: dict[str, Path]) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("booster-server")
    models: list[dict[str, Any]] = []
    for name, path in boosters.items():
        kind = "xgboost" if name.startswith("xgb") else "lightgbm"
        model: dict[str, Any] = {"name": name, "type": kind, "uri": path.as_uri()}
        if name.endswith("regression"):
            model["schema"] = {"input": NULLABLE}
        models.append(model)
    config = write_config(folder / "service.yaml", models)
    srv = Server(["--config", str(config)], folder / "server.log")
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


def in_process(path: Path, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The booster's own prediction, loaded and called here."""
    if path.name.startswith("xgb"):
        booster = xgb.Booster(model_file=str(path))
        return np.asarray(booster.predict(xgb.DMatrix(x, feature_names=FEATURES)))
    return np.asarray(lgb.Booster(model_file=str(path)).predict(x))


def expected_records(name: str, raw: np.ndarray[Any, Any]) -> list[dict[str, Any]]:
    """What the records answer must be, from the in-process prediction."""
    if name.endswith("regression"):
        return [{"prediction": float(v)} for v in raw.astype(np.float64)]
    proba = raw.astype(np.float64)
    if name.endswith("binary"):
        proba = np.column_stack([1.0 - proba, proba])
    return [
        {"prediction": int(row.argmax()), **{f"proba_{k}": float(p) for k, p in enumerate(row)}}
        for row in proba
    ]


@pytest.mark.parametrize("name", MODELS)
def test_records_equal_the_boosters_own_prediction(
    server: Server, boosters: dict[str, Path], name: str
) -> None:
    x, _ = booster_data(rows=300, seed=11)
    records = [dict(zip(FEATURES, row, strict=True)) for row in x.tolist()]
    answer = server.client.post(f"/v2/models/{name}/records", json=records)
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected_records(name, in_process(boosters[name], x))


@pytest.mark.parametrize("name", ["xgb-regression", "lgb-regression"])
def test_nulls_are_missing_values(server: Server, boosters: dict[str, Path], name: str) -> None:
    x, _ = booster_data(rows=20, seed=3)
    x[::3, 1] = np.nan
    x[1::4, 4] = np.nan
    records = [
        {f: (None if np.isnan(v) else v) for f, v in zip(FEATURES, row, strict=True)}
        for row in x.tolist()
    ]
    del records[2]["f2"]  # a nullable field left out is missing too
    x[2, 2] = np.nan
    answer = server.client.post(f"/v2/models/{name}/records", json=records).json()
    assert answer == expected_records(name, in_process(boosters[name], x))


@pytest.mark.parametrize("name", MODELS)
def test_infer_through_tritonclient(server: Server, boosters: dict[str, Path], name: str) -> None:
    x, _ = booster_data(rows=64, seed=5)
    raw = in_process(boosters[name], x)
    expected = expected_records(name, raw)
    outputs = list(expected[0])
    client = triton_client(server.url)
    try:
        assert client.is_server_ready() and client.is_model_ready(name)
        got = triton_infer(client, name, {"input": (x, "FP64")}, outputs)
        columns = triton_infer(
            client,
            name,
            {f: (x[:, j].astype(np.float32), "FP32") for j, f in enumerate(FEATURES)},
            ["prediction"],
        )
    finally:
        client.close()
    for key in outputs:
        assert got[key].tolist() == [row[key] for row in expected], key
    float32 = in_process(boosters[name], x.astype(np.float32).astype(np.float64))
    assert columns["prediction"].tolist() == [
        r["prediction"] for r in expected_records(name, float32)
    ]


def test_metadata_comes_from_the_booster(server: Server) -> None:
    client = triton_client(server.url)
    try:
        meta = client.get_model_metadata("xgb-multiclass")
        lgb_meta = client.get_model_metadata("lgb-binary")
    finally:
        client.close()
    assert meta["platform"] == "xgboost"
    assert [i["name"] for i in meta["inputs"]] == FEATURES
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [
        ("prediction", "INT64"),
        ("proba_0", "FP64"),
        ("proba_1", "FP64"),
        ("proba_2", "FP64"),
    ]
    assert meta["parameters"]["objective"] == "multi:softprob"
    assert meta["parameters"]["coalesce"] is True
    assert lgb_meta["platform"] == "lightgbm"
    assert lgb_meta["parameters"]["objective"] == "binary"
    assert [o["name"] for o in lgb_meta["outputs"]] == ["prediction", "proba_0", "proba_1"]


def test_bad_input_is_a_client_error(server: Server) -> None:
    client = triton_client(server.url)
    try:
        with pytest.raises(InferenceServerException, match=r"expected shape \[rows, 5\]"):
            triton_infer(client, "xgb-binary", {"x": (np.zeros((2, 4)), "FP64")}, ["prediction"])
        with pytest.raises(InferenceServerException, match=r"unknown input\(s\) nope"):
            triton_infer(
                client,
                "lgb-binary",
                {"f0": (np.zeros(1), "FP64"), "nope": (np.zeros(1), "FP64")},
                ["prediction"],
            )
        strings = triton.InferInput("x", [1, 5], "BYTES")
        strings.set_data_from_numpy(np.array([["a"] * 5], dtype=object), binary_data=False)
        with pytest.raises(InferenceServerException, match="takes numbers, got BYTES"):
            client.infer("lgb-binary", [strings])
        binary = triton.InferInput("x", [1, 5], "FP64")
        binary.set_data_from_numpy(np.zeros((1, 5)), binary_data=True)
        with pytest.raises(InferenceServerException, match="binary tensor data extension"):
            client.infer("lgb-binary", [binary])
    finally:
        client.close()
    http = server.client
    assert http.post("/v2/models/xgb-binary/records", json={"f0": 1}).status_code == 422
    assert http.post("/v2/models/xgb-binary/records", content=b"[{").status_code == 400
    bad_type = http.post(
        "/v2/models/lgb-multiclass/records",
        json=[{f: 0.5 for f in FEATURES}, {**{f: 0.5 for f in FEATURES}, "f3": "high"}],
    )
    assert bad_type.status_code == 200
    first, second = bad_type.json()
    assert first["prediction"] in (0, 1, 2)
    assert second == {"$error": "field 'f3': expected double, got string"}
    missing = http.post("/v2/models/xgb-binary/records", json=[{"f0": 1.0}]).json()
    assert missing == [{"$error": "field 'f1' is missing"}]


def test_pickles_and_foreign_files_are_refused(
    tmp_path: Path, boosters: dict[str, Path], start_server: Any
) -> None:
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(boosters["xgb-binary"].read_bytes())
    config = write_config(
        tmp_path / "service.yaml",
        [
            {"name": "pickled", "type": "xgboost", "uri": pickled.as_uri()},
            {"name": "foreign", "type": "lightgbm", "uri": boosters["xgb-binary"].as_uri()},
            {"name": "swapped", "type": "xgboost", "uri": boosters["lgb-binary"].as_uri()},
            {
                "name": "narrow",
                "type": "lightgbm",
                "uri": boosters["lgb-binary"].as_uri(),
                "schema": {"input": NULLABLE[:3]},
            },
        ],
    )
    srv = start_server(["--config", str(config)]).wait_live()
    reasons: dict[str, str] = {}

    def loads_ended() -> bool:
        body = httpx.get(srv.url + "/v2/health/ready", timeout=5).json()
        reasons.update(body.get("models", {}))
        return len(reasons) == 4 and "loading" not in reasons.values()

    wait_until(loads_ended, what="the four loads to fail")
    assert "booster's own .json or .ubj file" in reasons["pickled"]
    assert "model.pkl" in reasons["pickled"]
    assert reasons["foreign"].startswith("lightgbm cannot load xgb-binary.json")
    assert reasons["swapped"].startswith("an xgboost model is the booster's own .json or .ubj")
    assert reasons["narrow"] == "the booster takes 5 features, schema.input declares 3"
