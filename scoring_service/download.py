"""Fetching a model's file from its `file://`, `http(s)://` or `s3://` URI, sha256 checked.

Does I/O (files, HTTP, S3) through `common.fetch`; blocking, meant to run in a worker thread.
`file://` models are used in place; others are downloaded into `<download folder>/<model>/`
(temp file, then rename), HTTP retried on transient failures; S3 takes its endpoint from
`TEKSCORE_S3_ENDPOINT_URL`, else `AWS_ENDPOINT_URL`, and the standard AWS credentials. Failures
become the service's `DownloadError` / `ChecksumError` for that model.

A model that is a folder (`tensorflow`: a SavedModel) is a local folder used in place (no
sha256: a checksum is of a file), or an archive (`scoring_service.archives`), local or remote,
whose sha256 is checked before it is unpacked into `<download folder>/<model>/model/`.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from common.fetch import ChecksumMismatch, FetchError, local_path
from common.fetch import fetch as fetch_uri
from scoring_service.archives import ArchiveError, is_archive, unpack
from scoring_service.config import ModelConfig
from scoring_service.errors import ChecksumError, DownloadError

log = structlog.get_logger("scoring_service.download")

FOLDER_TYPES = {"tensorflow"}
"""Model types whose model is a folder."""


def fetch(config: ModelConfig, dest_dir: Path) -> Path:
    """The local path of the model file (or folder), downloaded when remote, its sha256
    verified, unpacked when it is an archive of a folder model."""
    local = local_path(config.uri)
    if local is not None and local.is_dir():
        if config.type not in FOLDER_TYPES:
            raise DownloadError(
                config.name, f"{config.uri} is a folder; a {config.type} model is a file"
            )
        if config.sha256 is not None:
            raise DownloadError(
                config.name,
                f"{config.uri} is a folder and sha256 is checked on a file: give the model as "
                "an archive (.tar.gz or .zip) to have it checked",
            )
        return local
    try:
        path = fetch_uri(config.uri, dest_dir / config.name, sha256=config.sha256)
    except ChecksumMismatch as exc:
        raise ChecksumError(config.name, expected=exc.expected, actual=exc.actual) from exc
    except FetchError as exc:
        raise DownloadError(config.name, exc.reason) from exc
    if local is None:
        log.info("model_downloaded", model=config.name, uri=config.uri, bytes=path.stat().st_size)
    if config.type in FOLDER_TYPES:
        if not is_archive(path):
            raise DownloadError(
                config.name,
                f"a {config.type} model is a folder, or an archive of it (.tar.gz, .tgz, .tar, "
                f".zip): got {path.name}",
            )
        try:
            return unpack(path, dest_dir / config.name / "model")
        except ArchiveError as exc:
            raise DownloadError(config.name, str(exc)) from exc
    return path
