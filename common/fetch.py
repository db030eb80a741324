"""Fetching a file by URI: models (scoring service) and user code (python steps of a flow).

Does I/O (files, HTTP, S3); blocking, meant for a worker thread. Schemes:

- `file://` (or a plain path): the file is used in place;
- `http(s)://`: httpx, redirects followed; transport errors, 429 and 5xx answers retried with
  the one policy of `common.retry` (`attempts` tries);
- `s3://BUCKET/KEY`: boto3, endpoint from `TEKSCORE_S3_ENDPOINT_URL`, else `AWS_ENDPOINT_URL`,
  credentials from the standard AWS environment.

A download goes to a temporary file beside its target and is renamed into place only once
complete and checked, so a target is never half a file. `sha256` (hex) is compared without
regard to case. `fetch` downloads into a folder the caller owns; `fetched` into a temporary
folder that is removed when its block ends, whatever happens.

Errors: `FetchError` (`uri`, `reason`), and its subclass `ChecksumMismatch` (`expected`,
`actual`) when the bytes are not the ones announced.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import httpx

from common.files import replacing
from common.retry import Policy, transient_http

HTTP_ATTEMPTS = 3
_CHUNK = 1 << 20


class FetchError(Exception):
    """The file behind `uri` could not be fetched; `reason` says why in a full phrase."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(reason)
        self.uri = uri
        self.reason = reason


class ChecksumMismatch(FetchError):
    """The fetched bytes do not have the announced sha256."""

    def __init__(self, uri: str, *, expected: str, actual: str) -> None:
        super().__init__(uri, f"sha256 mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(uri: str, path: Path, sha256: str | None) -> None:
    """Raise `ChecksumMismatch` unless `path` hashes to `sha256` (no check without one)."""
    if sha256 is None:
        return
    actual = sha256_of(path)
    if actual != sha256.lower():
        raise ChecksumMismatch(uri, expected=sha256, actual=actual)


def local_path(uri: str) -> Path | None:
    """The path of a `file://` URI or a plain path; None for any other scheme."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(url2pathname(unquote(parsed.path)))
    if parsed.scheme == "":
        return Path(uri)
    return None


def fetch(
    uri: str,
    dest_dir: Path,
    *,
    sha256: str | None = None,
    name: str | None = None,
    attempts: int = HTTP_ATTEMPTS,
    transport: httpx.BaseTransport | None = None,
) -> Path:
    """The local path of the file behind `uri`, its sha256 checked: a local file in place, a
    remote one downloaded to `dest_dir/<name or the URI's base name>`."""
    path = local_path(uri)
    if path is not None:
        if not path.is_file():
            raise FetchError(uri, f"{uri}: no such file")
        verify(uri, path, sha256)
        return path
    parsed = urlparse(uri)
    target = dest_dir / (name or Path(unquote(parsed.path)).name or "download")
    with replacing(target, fsync=False) as tmp:
        if parsed.scheme in ("http", "https"):
            _http_get(uri, tmp, attempts, transport)
        elif parsed.scheme == "s3":
            key = parsed.path.lstrip("/")
            if not parsed.netloc or not key:
                raise FetchError(uri, f"{uri}: expected s3://BUCKET/KEY")
            _s3_get(uri, parsed.netloc, key, tmp)
        else:
            raise FetchError(uri, f"unsupported uri scheme '{parsed.scheme}'")
        verify(uri, tmp, sha256)
    return target


@contextlib.contextmanager
def fetched(
    uri: str, *, sha256: str | None = None, prefix: str = "tekscore-fetch-"
) -> Iterator[Path]:
    """`fetch` into a temporary folder, removed when the block ends (a local file is used in
    place and left alone)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield fetch(uri, folder, sha256=sha256)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _http_get(uri: str, target: Path, attempts: int, transport: httpx.BaseTransport | None) -> None:
    timeout = httpx.Timeout(60.0, connect=10.0)
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True, transport=transport) as client:
            policy = Policy(retry_on=transient_http, attempts=attempts, first=0.5, longest=4)
            for attempt in policy.retrying_sync():
                with attempt, client.stream("GET", uri) as response:
                    if response.status_code >= 500 or response.status_code == 429:
                        response.raise_for_status()
                    if response.status_code != 200:
                        raise FetchError(uri, f"GET {uri} answered {response.status_code}")
                    with target.open("wb") as f:
                        for chunk in response.iter_bytes(_CHUNK):
                            f.write(chunk)
    except httpx.HTTPStatusError as exc:
        reason = f"GET {uri} answered {exc.response.status_code}"
        raise FetchError(uri, f"GET {uri} failed after {attempts} attempts: {reason}") from exc
    except httpx.HTTPError as exc:
        raise FetchError(uri, f"GET {uri} failed after {attempts} attempts: {exc}") from exc


def s3_client() -> Any:
    """A boto3 S3 client with the endpoint of the environment (`TEKSCORE_S3_ENDPOINT_URL`,
    else `AWS_ENDPOINT_URL`, else AWS)."""
    import boto3

    endpoint = os.environ.get("TEKSCORE_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint or None)


def _s3_get(uri: str, bucket: str, key: str, target: Path) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3_client().download_file(bucket, key, str(target))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        raise FetchError(uri, f"s3://{bucket}/{key}: {code}: {exc}") from exc
    except BotoCoreError as exc:
        raise FetchError(uri, f"s3://{bucket}/{key}: {exc}") from exc
