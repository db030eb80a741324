"""The packages of a python model's requirements file, in a virtual environment of its own,
cached by content.

Does I/O: creates folders, runs `python -m venv` and pip (blocking; called from the model
loader's worker thread). The environment for a requirements file lives in
`$TEKSCORE_VENV_CACHE` (default `~/.cache/tekscore/venvs`) under the sha256 of the file's bytes
and of this Python's version, so the same requirements install once per machine (or volume);
it is built in a temporary folder and renamed into place when pip succeeded, under a file lock
(several workers or services can ask at once). Packages come from the package index pip is
configured with (its config files, `PIP_INDEX_URL`, `PIP_FIND_LINKS`, `PIP_NO_INDEX`); a
Racetrack manifest's `build_env` is added to pip's environment. The model's module then sees the
environment's site-packages right after its own folder on `sys.path`, as Racetrack's job runner
does it.

Errors: `RequirementsError` with pip's reason; when the index could not be reached it says so
and names the index.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from collections.abc import Mapping
from pathlib import Path

import structlog

log = structlog.get_logger("scoring_service.venvs")

CACHE_ENV = "TEKSCORE_VENV_CACHE"
_UNREACHABLE = (
    "Failed to establish a new connection",
    "NewConnectionError",
    "ConnectTimeoutError",
    "Connection refused",
    "Name or service not known",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ProxyError",
)


class RequirementsError(Exception):
    """The requirements could not be installed; `reason` says why in a sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """Where environments are kept."""
    env = os.environ if env is None else env
    configured = env.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "tekscore" / "venvs"


def key(requirements: bytes) -> str:
    """The cache key of a requirements file's bytes for this Python."""
    digest = hashlib.sha256(requirements)
    digest.update(f"{sys.implementation.cache_tag}-{sys.platform}".encode())
    return digest.hexdigest()[:32]


def site_packages(root: Path) -> Path:
    """The site-packages folder of the environment at `root`."""
    return (
        root
        / "lib"
        / f"python{sys.version_info.major}.{sys.version_info.minor}"
        / ("site-packages")
    )


def environment_for(
    requirements: Path, *, extra_env: Mapping[str, str] | None = None, timeout: float = 900
) -> Path:
    """The site-packages folder of an environment with `requirements` installed (made once)."""
    try:
        text = requirements.read_bytes()
    except OSError as exc:
        raise RequirementsError(f"cannot read {requirements}: {exc.strerror or exc}") from exc
    root = cache_root() / key(text)
    if (root / ".complete").exists():
        return site_packages(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f"{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / ".complete").exists():  # another process built it while we waited
            return site_packages(root)
        _build(requirements, root, extra_env or {}, timeout)
    return site_packages(root)


def _build(requirements: Path, root: Path, extra_env: Mapping[str, str], timeout: float) -> None:
    building = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    log.info("installing requirements", requirements=str(requirements))
    try:
        venv.EnvBuilder(with_pip=False, symlinks=True).create(building)
        command = [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(building / "bin" / "python"),
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--retries",
            "1",
            "--timeout",
            "15",
            "-r",
            str(requirements),
        ]
        env = {**os.environ, **extra_env, "PIP_REQUIRE_VIRTUALENV": "0"}
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                env=env,
                cwd=requirements.parent,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RequirementsError(
                f"installing {requirements.name} took more than {timeout:.0f}s"
            ) from exc
        if done.returncode != 0:
            raise RequirementsError(_why(requirements, done.stdout + done.stderr, env))
        (building / ".complete").write_text(requirements.read_text(encoding="utf-8"))
        if root.exists():  # a stale, incomplete one
            shutil.rmtree(root)
        building.rename(root)
        log.info("requirements installed", requirements=str(requirements), environment=str(root))
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _why(requirements: Path, output: str, env: Mapping[str, str]) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if any(marker in output for marker in _UNREACHABLE):
        index = env.get("PIP_INDEX_URL") or "pip's configured index (https://pypi.org/simple)"
        detail = next((line for line in lines if any(m in line for m in _UNREACHABLE)), "")
        return (
            f"installing {requirements.name} failed: the package index {index} cannot be "
            f"reached ({detail[:300]})"
        )
    errors = [line for line in lines if line.startswith("ERROR")] or lines[-3:]
    return f"installing {requirements.name} failed: {' '.join(errors)[:600]}"
