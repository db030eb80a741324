"""Model download at start, over real servers: a local `http.server` thread and a moto S3
server process. A good sha256 gets the model ready; a bad sha256 or a missing object keeps
the service not-ready and says why at `/v2/models/{m}/ready` and in the log."""

from __future__ import annotations

import functools
import hashlib
import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.ports import free_port
from tests.scoring_service.conftest import (
    IRIS_INPUT,
    Server,
    wait_until,
    write_config,
)

BAD_SHA = "0" * 64


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wait_settled(server: Server, names: list[str]) -> dict[str, Any]:
    """Wait until every model is ready or failed; return the ready answers."""
    answers: dict[str, Any] = {}

    def settled() -> bool:
        for name in names:
            body = server.client.get(f"/v2/models/{name}/ready").json()
            if body.get("state") == "loading":
                return False
            answers[name] = body
        return True

    wait_until(settled, what="models settled")
    return answers


def _models(base: str, model_path: Path, models_dir: Path) -> list[dict[str, Any]]:
    return [
        {
            "name": "good",
            "type": "sklearn",
            "uri": f"{base}/model.joblib",
            "sha256": _sha(model_path),
            "schema": {"input": IRIS_INPUT},
        },
        {"name": "badsum", "type": "sklearn", "uri": f"{base}/model.joblib", "sha256": BAD_SHA},
        {"name": "missing", "type": "python", "uri": f"{base}/nothing.py"},
        {"name": "py", "type": "python", "uri": f"{base}/fastscore.py"},
    ]


def _check(server: Server) -> None:
    answers = _wait_settled(server, ["good", "badsum", "missing", "py"])
    assert answers["good"] == {"name": "good", "ready": True}
    assert answers["py"]["ready"] is True
    assert answers["badsum"]["state"] == "failed"
    assert f"sha256 mismatch: expected {BAD_SHA}" in answers["badsum"]["error"]
    assert answers["missing"]["state"] == "failed"
    ready = server.client.get("/v2/health/ready")
    assert ready.status_code == 503
    assert "badsum" in ready.json()["error"]
    record = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}
    assert (
        server.client.post("/v2/models/good/records", json=[record]).json()[0]["prediction"]
        == "virginica"
    )
    response = server.client.post("/v2/models/badsum/records", json=[record])
    assert response.status_code == 503 and "sha256 mismatch" in response.json()["error"]
    assert server.client.post("/v2/models/py/records", json=[{"n": 2}]).json() == [
        [{"i": 0, "of": 2}, {"i": 1, "of": 2}]
    ]
    assert "model_load_failed" in server.log() and "sha256 mismatch" in server.log()


def test_http_download_checks_sha256(
    http_root: tuple[Path, str],
    iris_model_path: Path,
    models_dir: Path,
    start_server: Any,
    tmp_path: Path,
) -> None:
    root, base = http_root
    (root / "model.joblib").write_bytes(iris_model_path.read_bytes())
    (root / "fastscore.py").write_bytes((models_dir / "fastscore.py").read_bytes())
    config = write_config(tmp_path / "svc.yaml", _models(base, iris_model_path, models_dir))
    server = start_server(["--config", str(config)]).wait_live()
    _check(server)
    missing = server.client.get("/v2/models/missing/ready").json()
    assert "answered 404" in missing["error"]


@pytest.fixture
def s3_endpoint(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    moto = Path(sys.executable).parent / "moto_server"
    log = (tmp_path / "moto.log").open("wb")
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, (tmp_path / "moto.log").read_text()
        try:
            return httpx.get(url + "/moto-api/", timeout=2).status_code < 500
        except httpx.TransportError:
            return False

    try:
        wait_until(up, what="moto server")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def test_s3_download_checks_sha256(
    s3_endpoint: str,
    iris_model_path: Path,
    models_dir: Path,
    start_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3

    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="iris/model.joblib", Body=iris_model_path.read_bytes())
    s3.put_object(
        Bucket="models", Key="iris/fastscore.py", Body=(models_dir / "fastscore.py").read_bytes()
    )
    config = write_config(
        tmp_path / "svc.yaml", _models("s3://models/iris", iris_model_path, models_dir)
    )
    env = {**AWS_ENV, "TEKSCORE_S3_ENDPOINT_URL": s3_endpoint}
    server = start_server(["--config", str(config)], env=env).wait_live()
    _check(server)
    missing = server.client.get("/v2/models/missing/ready").json()
    assert "s3://models/iris/nothing.py" in missing["error"]
