"""Fetching a model's file from its `file://`, `http(s)://` or `s3://` URI, sha256 checked; a
python model's folder (a Racetrack job) from `file://` or from git.

Does I/O (files, HTTP, S3, `git clone`) through `common.fetch` and git; blocking, meant to run
in a worker thread. `file://` models are used in place; others are downloaded into
`<download folder>/<model>/` (temp file, then rename), HTTP retried on transient failures; S3
takes its endpoint from `TEKSCORE_S3_ENDPOINT_URL`, else `AWS_ENDPOINT_URL`, and the standard
AWS credentials. Failures become the service's `DownloadError` / `ChecksumError` for that model.

A model that is a folder (`tensorflow`: a SavedModel) is a local folder used in place (no
sha256: a checksum is of a file), or an archive (`scoring_service.archives`), local or remote,
whose sha256 is checked before it is unpacked into `<download folder>/<model>/model/`. A python
model may be a folder too: a Racetrack job (`job.yaml`), local, or from git:
`git+<remote>[@<branch>][#subdirectory=<dir>]` (pip's form of a Racetrack manifest's `git`
block) is cloned shallow into `<download folder>/<model>/repo`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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
    verified, unpacked when it is an archive of a folder model; a python model's job folder
    used in place or cloned from git."""
    if config.uri.startswith("git+"):
        return clone(config, dest_dir)
    local = local_path(config.uri)
    if local is not None and local.is_dir():
        if config.type not in FOLDER_TYPES and config.type != "python":
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


def split_git_uri(uri: str) -> tuple[str, str | None, str]:
    """`git+<remote>[@<ref>][#subdirectory=<dir>]` as (remote, ref, subdirectory)."""
    rest = uri[len("git+") :]
    rest, _, fragment = rest.partition("#")
    subdirectory = "."
    for part in filter(None, fragment.split("&")):
        key, _, value = part.partition("=")
        if key == "subdirectory" and value:
            subdirectory = value
    parsed = urlsplit(rest)
    path, ref = parsed.path, None
    if "@" in path:
        path, ref = path.rsplit("@", 1)
    return urlunsplit(parsed._replace(path=path)), ref or None, subdirectory


def clone(config: ModelConfig, dest_dir: Path, *, timeout: float = 300) -> Path:
    """A shallow clone of the model's git uri; the job's folder inside it."""
    remote, ref, subdirectory = split_git_uri(config.uri)
    target = dest_dir / config.name / "repo"
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    command = ["git", "clone", "--quiet", "--depth", "1"]
    if ref:
        command += ["--branch", ref]
    command += [remote, str(target)]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DownloadError(config.name, f"git clone {remote}: {exc}") from exc
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise DownloadError(config.name, f"git clone {remote} ({ref or 'default branch'}): {why}")
    folder = (target / subdirectory).resolve()
    if not folder.is_relative_to(target.resolve()) or not folder.is_dir():
        raise DownloadError(config.name, f"{config.uri}: no folder {subdirectory!r} in the repo")
    log.info("model cloned", model=config.name, remote=remote, ref=ref, folder=str(folder))
    return folder
