"""The sklearn records fast path: answers byte-identical to encoding the result records,
concurrent requests scored together (coalesced) still each get exactly their own answer, and
a pipeline whose output depends on the whole batch is never coalesced. Plus in-process checks
of the column encoder and of the coalescer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import orjson
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, scale

from scoring_service.batching import Coalescer
from scoring_service.columns import RecordsEncoder, number_tokens
from tests.scoring_service.conftest import FEATURES, IRIS_INPUT, Server, write_config


def expected_body(model: Any, records: list[dict[str, Any]]) -> bytes:
    """The answer as result records encoded by orjson (what the service did before)."""
    x = np.array([[r[f] for f in FEATURES] for r in records], dtype=np.float64)
    prediction = model.predict(x).tolist()
    proba = model.predict_proba(x)
    keys = ["prediction", *(f"proba_{c}" for c in model.classes_)]
    rows = zip(prediction, *proba.T.tolist(), strict=True)
    return orjson.dumps([dict(zip(keys, row, strict=True)) for row in rows])


def post_all(url: str, path: str, batches: list[list[dict[str, Any]]]) -> list[httpx.Response]:
    """Post every batch at once over several connections."""

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            return list(await asyncio.gather(*(client.post(path, json=b) for b in batches)))

    return asyncio.run(run())


@pytest.mark.parametrize("size", [1, 7, 300])
def test_records_answer_is_byte_identical_to_encoded_result_records(
    main_server: Server, iris_model_path: Path, iris_records: list[dict[str, Any]], size: int
) -> None:
    model = joblib.load(iris_model_path)
    batch = iris_records[:size]
    response = main_server.client.post("/v2/models/iris/records", json=batch)
    assert response.status_code == 200
    assert response.content == expected_body(model, batch)


def test_concurrent_requests_scored_together_each_get_their_own_answer(
    main_server: Server, iris_model_path: Path, iris_records: list[dict[str, Any]]
) -> None:
    meta = main_server.client.get("/v2/models/iris").json()
    assert meta["parameters"]["coalesce"] is True
    model = joblib.load(iris_model_path)
    batches: list[list[dict[str, Any]]] = []
    for i in range(48):
        batch = [dict(r) for r in iris_records[i * 5 : i * 5 + 1 + (i * 7) % 40]]
        if i % 6 == 1:
            batch[0] = {**batch[0], "petal_width": "wide"}  # this request takes the checked path
        if i % 12 == 5:
            batch = []
        batches.append(batch)
    responses = post_all(main_server.url, "/v2/models/iris/records", batches)
    for i, (batch, response) in enumerate(zip(batches, responses, strict=True)):
        assert response.status_code == 200, (i, response.text)
        if i % 6 == 1:
            results = response.json()
            assert results[0] == {"$error": "field 'petal_width': expected double, got string"}
            if len(batch) > 1:
                assert orjson.dumps(results[1:]) == expected_body(model, batch[1:])
        else:
            assert response.content == (expected_body(model, batch) if batch else b"[]"), i


@pytest.fixture(scope="module")
def batch_dependent_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pipeline whose first step standardises each call's batch by that batch's own mean."""
    data = load_iris()
    model = make_pipeline(FunctionTransformer(scale), LogisticRegression(max_iter=1000))
    model.fit(data.data, np.asarray(data.target_names)[data.target])
    path = tmp_path_factory.mktemp("batchdep") / "model.joblib"
    joblib.dump(model, path)
    return path


def test_batch_dependent_pipeline_is_scored_per_request(
    batch_dependent_model: Path,
    iris_records: list[dict[str, Any]],
    tmp_path: Path,
    start_server: Any,
) -> None:
    config = write_config(
        tmp_path / "svc.yaml",
        [
            {
                "name": "scaled",
                "type": "sklearn",
                "uri": batch_dependent_model.as_uri(),
                "schema": {"input": IRIS_INPUT},
            }
        ],
    )
    server: Server = start_server(["--config", str(config)]).wait_ready()
    assert server.client.get("/v2/models/scaled").json()["parameters"]["coalesce"] is False
    model = joblib.load(batch_dependent_model)
    batches = [iris_records[i * 6 : i * 6 + 2 + i % 9] for i in range(32)]
    responses = post_all(server.url, "/v2/models/scaled/records", batches)
    for batch, response in zip(batches, responses, strict=True):
        assert response.status_code == 200
        assert response.content == expected_body(model, batch)


# -- in process -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "column",
    [
        np.random.default_rng(0).random(500),
        np.random.default_rng(1).normal(size=200) * 1e300,
        np.array([0.0, -0.0, 1.0, 5e-324, 1.7976931348623157e308, 1e-7, 123456789.0]),
        np.array([np.nan, np.inf, -np.inf, 2.5]),
        np.random.default_rng(2).random(100).astype(np.float32),
        np.arange(-5, 5),
        np.arange(4, dtype=np.uint64) * 2**61,
        np.array([True, False, True]),
        np.array([], dtype=np.float64),
    ],
)
def test_number_tokens_are_what_orjson_writes_for_the_python_values(column: Any) -> None:
    tokens = number_tokens(column)
    assert tokens is not None
    assert b"[" + b",".join(tokens) + b"]" == orjson.dumps(column.tolist())


def test_number_tokens_refuse_other_columns() -> None:
    assert number_tokens(np.array(["a", "b"])) is None
    assert number_tokens(np.array([1, "b"], dtype=object)) is None
    assert number_tokens(np.zeros((2, 2))) is None


def test_records_encoder_writes_the_records_orjson_would() -> None:
    keys = ["prediction", 'proba_a,"b"', "ü"]
    prediction = ["x", 'y"z', "a,b"]
    values = [0.25, 1e-300, float("nan")]
    encode = RecordsEncoder(keys)
    body = encode(
        [[orjson.dumps(p) for p in prediction], number_tokens(np.array(values)) or [], [b"1"] * 3]
    )
    rows = zip(prediction, values, [1, 1, 1], strict=True)
    expected = [dict(zip(keys, row, strict=True)) for row in rows]
    assert body == orjson.dumps(expected)
    assert encode([[], [], []]) == b"[]"
    with pytest.raises(ValueError, match="different lengths"):
        encode([[b"1"], [], [b"2"]])


def test_coalescer_scores_one_loop_pass_with_one_call_and_answers_each() -> None:
    calls: list[list[int]] = []

    def score_many(jobs: list[list[dict[str, Any]]]) -> list[Any]:
        calls.append([len(j) for j in jobs])
        return [
            ValueError("bad") if job and job[0].get("bad") else (b"%d" % len(job), 0)
            for job in jobs
        ]

    async def run() -> list[Any]:
        coalescer = Coalescer(score_many, max_rows=5)
        jobs: list[list[dict[str, Any]]] = [[{}] * 2, [{"bad": True}], [{}] * 3, [{}] * 4]
        return await asyncio.gather(*(coalescer.score(j) for j in jobs), return_exceptions=True)

    answers = asyncio.run(run())
    assert calls == [[2, 1], [3], [4]]  # one pass, cut at max_rows
    assert answers[0] == (b"2", 0) and answers[2] == (b"3", 0) and answers[3] == (b"4", 0)
    assert isinstance(answers[1], ValueError)


def test_coalescer_never_leaves_a_request_waiting_when_the_model_misbehaves() -> None:
    async def run(score_many: Any) -> list[Any]:
        coalescer = Coalescer(score_many)
        jobs: list[list[dict[str, Any]]] = [[{}], [{}]]
        return await asyncio.gather(*(coalescer.score(j) for j in jobs), return_exceptions=True)

    def raises(jobs: Any) -> Any:
        raise RuntimeError("broken")

    assert all(isinstance(a, RuntimeError) for a in asyncio.run(run(raises)))
    assert all(isinstance(a, RuntimeError) for a in asyncio.run(run(lambda jobs: [])))


def test_no_coalesce_option_scores_each_request_alone(
    iris_model_path: Path, iris_records: list[dict[str, Any]], tmp_path: Path, start_server: Any
) -> None:
    config = write_config(
        tmp_path / "svc.yaml",
        [
            {
                "name": "iris",
                "type": "sklearn",
                "uri": iris_model_path.as_uri(),
                "schema": {"input": IRIS_INPUT},
            }
        ],
    )
    server: Server = start_server(["--config", str(config), "--no-coalesce"]).wait_ready()
    started = [line for line in server.log().splitlines() if '"serve_model"' in line]
    assert started and orjson.loads(started[0])["coalesce"] is False
    model = joblib.load(iris_model_path)
    batches = [iris_records[i * 4 : i * 4 + 1 + i % 5] for i in range(24)]
    responses = post_all(server.url, "/v2/models/iris/records", batches)
    for batch, response in zip(batches, responses, strict=True):
        assert response.status_code == 200
        assert response.content == expected_body(model, batch)


@pytest.fixture(scope="module")
def other_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A regressor (float predictions, no probabilities) and a classifier with integer labels
    whose predict is not an argmax of predict_proba (two model calls)."""
    from sklearn.linear_model import LinearRegression
    from sklearn.neighbors import KNeighborsClassifier

    data = load_iris()
    folder = tmp_path_factory.mktemp("others")
    paths = {}
    for name, model, target in [
        ("reg", LinearRegression(), data.data[:, 0] * 1.5 + 0.1),
        ("knn", KNeighborsClassifier(n_neighbors=5), data.target * 10),
    ]:
        model.fit(data.data, target)
        paths[name] = folder / f"{name}.joblib"
        joblib.dump(model, paths[name])
    return paths


def test_regressor_and_integer_label_classifier_answers(
    other_models: dict[str, Path],
    iris_records: list[dict[str, Any]],
    tmp_path: Path,
    start_server: Any,
) -> None:
    config = write_config(
        tmp_path / "svc.yaml",
        [
            {"name": n, "type": "sklearn", "uri": p.as_uri(), "schema": {"input": IRIS_INPUT}}
            for n, p in other_models.items()
        ],
    )
    server: Server = start_server(["--config", str(config)]).wait_ready()
    x = np.array([[r[f] for f in FEATURES] for r in iris_records], dtype=np.float64)
    reg = joblib.load(other_models["reg"])
    expected_reg = orjson.dumps([{"prediction": p} for p in reg.predict(x).tolist()])
    knn = joblib.load(other_models["knn"])
    keys = ["prediction", *(f"proba_{c}" for c in knn.classes_)]
    rows = zip(knn.predict(x).tolist(), *knn.predict_proba(x).T.tolist(), strict=True)
    expected_knn = orjson.dumps([dict(zip(keys, row, strict=True)) for row in rows])
    for name, expected in [("reg", expected_reg), ("knn", expected_knn)]:
        response = server.client.post(f"/v2/models/{name}/records", json=iris_records)
        assert response.status_code == 200
        assert response.content == expected, name
    assert server.client.get("/v2/models/reg").json()["parameters"]["coalesce"] is True
    assert server.client.get("/v2/models/knn").json()["parameters"]["coalesce"] is False


def test_coalescer_scores_a_lone_request_at_once_and_joins_concurrent_ones() -> None:
    calls: list[list[int]] = []

    def score_many(jobs: list[list[dict[str, Any]]]) -> list[Any]:
        calls.append([len(j) for j in jobs])
        return [(b"%d" % len(job), 0) for job in jobs]

    coalescer = Coalescer(score_many)
    with coalescer.track():  # the only request to the model: no loop pass to wait for
        lone = coalescer.score([{}] * 3)
        with pytest.raises(StopIteration) as done:
            lone.send(None)  # finishes without suspending
    assert done.value.value == (b"3", 0) and calls == [[3]]

    async def two() -> list[Any]:
        async def one(job: list[dict[str, Any]]) -> Any:
            with coalescer.track():
                await asyncio.sleep(0)  # both are being handled before either is scored
                return await coalescer.score(job)

        return list(await asyncio.gather(one([{}]), one([{}] * 2)))

    assert asyncio.run(two()) == [(b"1", 0), (b"2", 0)]
    assert calls == [[3], [1, 2]]  # one call for both
    assert coalescer.requests == 0
