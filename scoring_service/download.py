"""Fetching model files from `file://`, `http(s)://` and `s3://` URIs, with sha256 checks.

Does I/O (files, HTTP, S3); blocking, meant to run in a worker thread. `file://` models are
used in place; others are written to the download folder (temp file, then rename). HTTP
downloads retry transient failures (connection errors, 5xx) a bounded number of times.
S3: boto3 with the endpoint from `TEKSCORE_S3_ENDPOINT_URL`, else `AWS_ENDPOINT_URL`, and the
standard AWS credential environment variables.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import httpx
import structlog
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from scoring_service.config import ModelConfig
from scoring_service.errors import ChecksumError, DownloadError

log = structlog.get_logger("scoring_service.download")

_CHUNK = 1 << 20
HTTP_ATTEMPTS = 3


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(config: ModelConfig, path: Path) -> None:
    if config.sha256 is None:
        return
    actual = sha256_of(path)
    if actual != config.sha256:
        raise ChecksumError(config.name, expected=config.sha256, actual=actual)


def _basename(url_path: str, fallback: str) -> str:
    name = Path(unquote(url_path)).name
    return name or fallback


class _Transient(Exception):
    """A failure worth retrying (5xx answer)."""


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, (_Transient, httpx.TransportError))


@retry(
    retry=retry_if_exception(_retriable),
    stop=stop_after_attempt(HTTP_ATTEMPTS),
    wait=wait_exponential(multiplier=0.5, max=4),
    reraise=True,
)
def _http_get(uri: str, target: Path) -> None:
    timeout = httpx.Timeout(60.0, connect=10.0)
    with (
        httpx.Client(timeout=timeout, follow_redirects=True) as client,
        client.stream("GET", uri) as response,
    ):
        if response.status_code >= 500:
            raise _Transient(f"GET {uri} answered {response.status_code}")
        if response.status_code != 200:
            raise DownloadError("?", f"GET {uri} answered {response.status_code}")
        with target.open("wb") as f:
            for chunk in response.iter_bytes(_CHUNK):
                f.write(chunk)


def _s3_client() -> Any:
    import boto3

    endpoint = os.environ.get("TEKSCORE_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint or None)


def _s3_get(config: ModelConfig, bucket: str, key: str, target: Path) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        _s3_client().download_file(bucket, key, str(target))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        raise DownloadError(config.name, f"s3://{bucket}/{key}: {code}: {exc}") from exc
    except BotoCoreError as exc:
        raise DownloadError(config.name, f"s3://{bucket}/{key}: {exc}") from exc


def fetch(config: ModelConfig, dest_dir: Path) -> Path:
    """The local path of the model file, downloaded when remote, its sha256 verified."""
    parsed = urlparse(config.uri)
    if parsed.scheme == "file":
        path = Path(url2pathname(unquote(parsed.path)))
        if not path.is_file():
            raise DownloadError(config.name, f"{config.uri}: no such file")
        _verify(config, path)
        return path
    folder = dest_dir / config.name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / _basename(parsed.path, "model")
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".part-")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if parsed.scheme in ("http", "https"):
            try:
                _http_get(config.uri, tmp)
            except DownloadError as exc:
                raise DownloadError(config.name, exc.reason) from exc
            except (httpx.HTTPError, _Transient) as exc:
                raise DownloadError(
                    config.name, f"GET {config.uri} failed after {HTTP_ATTEMPTS} attempts: {exc}"
                ) from exc
        elif parsed.scheme == "s3":
            key = parsed.path.lstrip("/")
            if not parsed.netloc or not key:
                raise DownloadError(config.name, f"{config.uri}: expected s3://BUCKET/KEY")
            _s3_get(config, parsed.netloc, key, tmp)
        else:
            raise DownloadError(config.name, f"unsupported uri scheme '{parsed.scheme}'")
        _verify(config, tmp)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("model_downloaded", model=config.name, uri=config.uri, bytes=target.stat().st_size)
    return target
