"""The TensorFlow runtime in a real `tekscore serve-model` process: a SavedModel built by the
test (a child process, which also evaluates it in-process) is served from its folder and from
a `.tar.gz` archive with its sha256; records answers and OIP `infer` (through tritonclient's
HTTP client) equal TensorFlow's own outputs; metadata from the serving signature; bad input
answered 4xx; a folder with a sha256, or a file that is no archive, refused at load.
Skipped only when the `tensorflow` extra is not installed."""

from __future__ import annotations

import hashlib
import importlib.util
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from tests.scoring_service.conftest import Server, wait_until, write_config
from tests.scoring_service.runtimes import reference, triton_client, triton_infer

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None,
    reason="the tensorflow extra is not installed (pip install 'tekscore[tensorflow]')",
)

X = np.random.default_rng(4).normal(size=(50, 3)).astype(np.float32)
TAGS = [f"r{i}" for i in range(50)]


@pytest.fixture(scope="module")
def savedmodel(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("tf")
    model = folder / "scorer"
    expected = reference(
        folder, {"kind": "tensorflow", "model": str(model), "x": X.tolist(), "tag": TAGS}
    )
    archive = folder / "scorer.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(model, arcname=".")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    return {"folder": model, "archive": archive, "sha256": digest, "expected": expected}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, savedmodel: dict[str, Any]
) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("tf-server")
    config = write_config(
        folder / "service.yaml",
        [
            {"name": "scorer", "type": "tensorflow", "uri": savedmodel["folder"].as_uri()},
            {
                "name": "packed",
                "type": "tensorflow",
                "uri": savedmodel["archive"].as_uri(),
                "sha256": savedmodel["sha256"],
            },
        ],
        runtime="tensorflow",
    )
    srv = Server(
        ["--config", str(config), "--model-dir", str(folder / "models")], folder / "server.log"
    )
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


@pytest.mark.parametrize("model", ["scorer", "packed"])
def test_records_equal_tensorflow_in_process(
    server: Server, savedmodel: dict[str, Any], model: str
) -> None:
    records = [{"x": row, "tag": tag} for row, tag in zip(X.tolist(), TAGS, strict=True)]
    answer = server.client.post(f"/v2/models/{model}/records", json=records)
    assert answer.status_code == 200, answer.text
    expected = savedmodel["expected"]
    rows = answer.json()
    assert [r["scores"] for r in rows] == expected["scores"]
    assert [r["best"] for r in rows] == expected["best"]
    assert [r["label"] for r in rows] == expected["label"]


def test_infer_through_tritonclient(server: Server, savedmodel: dict[str, Any]) -> None:
    client = triton_client(server.url)
    try:
        assert client.is_model_ready("scorer")
        got = triton_infer(
            client,
            "scorer",
            {"x": (X, "FP32"), "tag": (np.array(TAGS, dtype=object), "BYTES")},
            ["scores", "best", "label"],
        )
    finally:
        client.close()
    expected = savedmodel["expected"]
    assert got["scores"].dtype == np.float32 and got["scores"].shape == (50, 2)
    assert got["scores"].tolist() == expected["scores"]
    assert got["best"].tolist() == expected["best"]
    assert got["label"].tolist() == expected["label"]


def test_metadata_from_the_signature(server: Server) -> None:
    client = triton_client(server.url)
    try:
        meta = client.get_model_metadata("scorer")
    finally:
        client.close()
    assert meta["platform"] == "tensorflow"
    inputs = {i["name"]: (i["datatype"], i["shape"]) for i in meta["inputs"]}
    assert inputs == {"x": ("FP32", [-1, 3]), "tag": ("BYTES", [-1])}
    outputs = {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]}
    assert outputs == {
        "scores": ("FP32", [-1, 2]),
        "best": ("INT64", [-1]),
        "label": ("BYTES", [-1]),
    }
    assert meta["parameters"]["signature"] == "serving_default"


def test_bad_input_is_a_client_error(server: Server) -> None:
    client = triton_client(server.url)
    try:
        with pytest.raises(InferenceServerException, match="tensorflow rejected the inputs"):
            triton_infer(
                client,
                "scorer",
                {"x": (X[:, :2].copy(), "FP32"), "tag": (np.array(TAGS, dtype=object), "BYTES")},
                ["best"],
            )
        with pytest.raises(InferenceServerException, match="input 'tag' is missing"):
            triton_infer(client, "scorer", {"x": (X, "FP32")}, ["best"])
    finally:
        client.close()
    records = [{"x": [1.0, 2.0, 3.0], "tag": "a"}, {"tag": "b"}, {"x": [1.0], "tag": "c"}]
    answer = server.client.post("/v2/models/scorer/records", json=records).json()
    assert answer[0]["label"].startswith("a-")
    assert answer[1] == {"$error": "scoring failed: ValueError: field 'x' is missing"}
    assert answer[2]["$error"].startswith("scoring failed: ")
    assert server.client.post("/v2/models/scorer/records", json=[1]).status_code == 422


def test_folder_with_sha256_and_non_archives_fail_their_load(
    tmp_path: Path, savedmodel: dict[str, Any], start_server: Any
) -> None:
    stray = tmp_path / "model.bin"
    stray.write_bytes(b"not an archive")
    config = write_config(
        tmp_path / "service.yaml",
        [
            {
                "name": "hashed",
                "type": "tensorflow",
                "uri": savedmodel["folder"].as_uri(),
                "sha256": savedmodel["sha256"],
            },
            {"name": "stray", "type": "tensorflow", "uri": stray.as_uri()},
            {"name": "empty", "type": "tensorflow", "uri": tmp_path.as_uri()},
        ],
    )
    srv = start_server(["--config", str(config)]).wait_live()
    reasons: dict[str, str] = {}

    def ended() -> bool:
        reasons.update(srv.client.get("/v2/health/ready").json().get("models", {}))
        return len(reasons) == 3 and "loading" not in reasons.values()

    wait_until(ended, what="the three loads to fail")
    assert "is a folder and sha256 is checked on a file" in reasons["hashed"]
    assert reasons["stray"].startswith("a tensorflow model is a folder, or an archive of it")
    assert (
        reasons["empty"] == f"{tmp_path.name} is not a SavedModel folder (no saved_model.pb in it)"
    )
