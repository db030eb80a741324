"""`common.fetch`, the one fetch helper of models and user code, against a real HTTP server (a
`http.server` thread that can answer 503 a few times first): local files in place, downloads
renamed into place only when complete and checked, sha256 compared without regard to case,
transient answers retried with the one policy and permanent ones not, and `fetched` removing its
temporary folder whatever happens."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.fetch import ChecksumMismatch, FetchError, fetch, fetched


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; answers 503 to the first `failures[path]` GETs of a path."""

    failures: dict[str, int]
    hits: dict[str, int]

    def do_GET(self) -> None:
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.failures.get(self.path, 0) > 0:
            self.failures[self.path] -= 1
            self.send_error(503, "try again")
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Site:
    def __init__(self, root: Path, base: str, handler: type[_Handler]) -> None:
        self.root, self.base, self.handler = root, base, handler

    def put(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return f"{self.base}/{name}"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    root = tmp_path / "www"
    root.mkdir()
    handler = type("Handler", (_Handler,), {"failures": {}, "hits": {}})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(root, f"http://127.0.0.1:{server.server_address[1]}", handler)
    finally:
        server.shutdown()
        server.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_local_file_is_used_in_place_and_checked(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    assert fetch(model.as_uri(), tmp_path / "dl", sha256=sha(b"weights")) == model
    assert fetch(str(model), tmp_path / "dl") == model
    assert not (tmp_path / "dl").exists()
    with pytest.raises(FetchError) as missing:
        fetch((tmp_path / "nope.bin").as_uri(), tmp_path / "dl")
    assert missing.value.reason == f"{(tmp_path / 'nope.bin').as_uri()}: no such file"


def test_a_download_lands_under_its_base_name_with_sha256_in_any_case(
    site: Site, tmp_path: Path
) -> None:
    uri = site.put("model.joblib", b"x" * 3_000_000)
    path = fetch(uri, tmp_path / "dl", sha256=sha(b"x" * 3_000_000).upper())
    assert path == tmp_path / "dl" / "model.joblib"
    assert path.read_bytes() == b"x" * 3_000_000
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["model.joblib"]


def test_a_checksum_mismatch_leaves_nothing_behind(site: Site, tmp_path: Path) -> None:
    uri = site.put("model.joblib", b"tampered")
    with pytest.raises(ChecksumMismatch) as failed:
        fetch(uri, tmp_path / "dl", sha256="0" * 64)
    assert failed.value.reason == f"sha256 mismatch: expected {'0' * 64}, got {sha(b'tampered')}"
    assert list((tmp_path / "dl").iterdir()) == []


def test_transient_answers_are_retried_and_permanent_ones_are_not(
    site: Site, tmp_path: Path
) -> None:
    uri = site.put("m.bin", b"ok")
    site.handler.failures["/m.bin"] = 2
    assert fetch(uri, tmp_path / "dl").read_bytes() == b"ok"
    assert site.handler.hits["/m.bin"] == 3

    site.handler.failures["/m.bin"] = 5
    with pytest.raises(FetchError) as gave_up:
        fetch(uri, tmp_path / "dl2", attempts=2)
    assert gave_up.value.reason == f"GET {uri} failed after 2 attempts: GET {uri} answered 503"

    with pytest.raises(FetchError) as missing:
        fetch(f"{site.base}/ghost.bin", tmp_path / "dl3")
    assert missing.value.reason == f"GET {site.base}/ghost.bin answered 404"
    assert site.handler.hits["/ghost.bin"] == 1


def test_an_unknown_scheme_or_a_bad_s3_uri_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="unsupported uri scheme 'ftp'"):
        fetch("ftp://host/m.bin", tmp_path)
    with pytest.raises(FetchError, match="expected s3://BUCKET/KEY"):
        fetch("s3://bucket-only", tmp_path)


def test_fetched_removes_its_temporary_folder_on_success_and_on_failure(
    site: Site, tmp_path: Path
) -> None:
    uri = site.put("step.py", b"def transform(r): return r\n")
    with fetched(uri, sha256=sha(b"def transform(r): return r\n")) as path:
        folder = path.parent
        assert path.read_bytes().startswith(b"def transform")
    assert not folder.exists()

    seen: list[Path] = []
    with pytest.raises(RuntimeError), fetched(uri) as path:
        seen.append(path.parent)
        raise RuntimeError("the caller failed")
    assert not seen[0].exists()

    before = set(Path(path.parent.parent).glob("tekscore-fetch-*"))
    with pytest.raises(ChecksumMismatch), fetched(uri, sha256="1" * 64):
        pass
    assert set(Path(path.parent.parent).glob("tekscore-fetch-*")) == before
