"""A Racetrack job folder as a python model: its `job.yaml`, its requirements, its environment.

Does I/O: reads the manifest, installs the requirements (`scoring_service.venvs`), changes
`sys.path`, `os.environ` and the working directory. As Racetrack's python job runner does: the
job's folder (the root of its repository) is on the import path, with the requirements'
packages right after it; `runtime_env` is set; relative paths (`./model.pkl`) resolve against
the job's folder (the first job's, when a service serves several). The class is
`jobtype_extra.entrypoint_class`, else the one class of `entrypoint_path` with `perform`
(`scoring_service.models.python`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import structlog

from common.racetrack import ManifestError, manifest_path, read_manifest
from scoring_service.errors import ModelLoadError
from scoring_service.venvs import RequirementsError, environment_for

log = structlog.get_logger("scoring_service.jobs")


@dataclass(frozen=True)
class Job:
    """What the model loader needs of a job folder."""

    folder: Path
    entrypoint: Path
    class_name: str | None


def _inside(folder: Path, relative: str, what: str, model: str) -> Path:
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ModelLoadError(model, f"{what} {relative!r} leaves the job's folder")
    if not path.is_file():
        raise ModelLoadError(model, f"{what} {relative!r}: no such file in {folder}")
    return path


_workdir_owner: list[str] = []
"""The model whose job folder is the process's working directory (the first job loaded)."""


def load_job(model: str, folder: Path) -> Job:
    """Prepare the job in `folder` for import: manifest read, requirements installed, paths
    and environment set; the first job of the process gets its folder as working directory."""
    try:
        manifest = read_manifest(folder)
    except ManifestError as exc:
        raise ModelLoadError(model, f"the Racetrack job manifest: {exc}") from exc
    entrypoint = _inside(folder, manifest.entrypoint_path, "entrypoint_path", model)
    root = str(folder.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    if manifest.requirements_path:
        requirements = _inside(folder, manifest.requirements_path, "requirements_path", model)
        try:
            packages = environment_for(requirements, extra_env=manifest.build_env)
        except RequirementsError as exc:
            raise ModelLoadError(model, exc.reason) from exc
        if str(packages) not in sys.path:
            sys.path.insert(1, str(packages))
    os.environ.update(manifest.runtime_env)
    if not _workdir_owner:
        _workdir_owner.append(model)
        os.chdir(folder)
    else:
        log.warning(
            "job working directory not set",
            model=model,
            why=f"it is the folder of {_workdir_owner[0]!r}; relative paths resolve against it",
        )
    log.info(
        "racetrack job",
        model=model,
        manifest=manifest_path(folder).name,
        job=manifest.name,
        version=manifest.version,
        entrypoint=str(entrypoint),
        entrypoint_class=manifest.entrypoint_class,
    )
    return Job(folder=folder, entrypoint=entrypoint, class_name=manifest.entrypoint_class)
