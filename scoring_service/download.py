"""Fetching a model's file from its `file://`, `http(s)://` or `s3://` URI, sha256 checked.

Does I/O (files, HTTP, S3) through `common.fetch`; blocking, meant to run in a worker thread.
`file://` models are used in place; others are downloaded into `<download folder>/<model>/`
(temp file, then rename), HTTP retried on transient failures; S3 takes its endpoint from
`TEKSCORE_S3_ENDPOINT_URL`, else `AWS_ENDPOINT_URL`, and the standard AWS credentials. Failures
become the service's `DownloadError` / `ChecksumError` for that model.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from common.fetch import ChecksumMismatch, FetchError, local_path
from common.fetch import fetch as fetch_uri
from scoring_service.config import ModelConfig
from scoring_service.errors import ChecksumError, DownloadError

log = structlog.get_logger("scoring_service.download")


def fetch(config: ModelConfig, dest_dir: Path) -> Path:
    """The local path of the model file, downloaded when remote, its sha256 verified."""
    try:
        path = fetch_uri(config.uri, dest_dir / config.name, sha256=config.sha256)
    except ChecksumMismatch as exc:
        raise ChecksumError(config.name, expected=exc.expected, actual=exc.actual) from exc
    except FetchError as exc:
        raise DownloadError(config.name, exc.reason) from exc
    if local_path(config.uri) is None:
        log.info("model_downloaded", model=config.name, uri=config.uri, bytes=path.stat().st_size)
    return path
