"""Racetrack job manifests (`job.yaml`): reading one, and what of it tekscore honours.

Pure except `read_manifest` (reads one file). The manifest is the one Racetrack documents
(`docs/manifest-schema.md`; its `racetrack_client.manifest.Manifest`); docs/compatibility.md
says what each field maps to. A python3 job's model is the class `entrypoint_class` (or the one
class) of `jobtype_extra.entrypoint_path`, its packages `requirements_path`; the rest maps onto a
tekscore `Model` (name, labels, `resources`) or is refused by name (`ManifestError`) when it
asks for something that cannot hold here (building an image: `system_dependencies`,
`secret_*_env_file`; other job types).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MANIFEST = "job.yaml"
FORMER_MANIFEST = "fatman.yaml"
"""The manifest's name before Racetrack's jobs were jobs; Racetrack still reads it when a folder
has no `job.yaml` (`racetrack_client.manifest.load.get_manifest_path`)."""
MANIFEST_FIELDS = (
    "name",
    "owner_email",
    "jobtype",
    "lang",
    "git",
    "version",
    "extends",
    "jobtype_extra",
    "python",
    "wrapper_properties",
    "build_env",
    "runtime_env",
    "secret_build_env_file",
    "secret_runtime_env_file",
    "image_type",
    "infrastructure_target",
    "labels",
    "public_endpoints",
    "replicas",
    "resources",
    "system_dependencies",
    "golang",
    "docker",
)
JOBTYPE_EXTRA = (
    "entrypoint_path",
    "entrypoint_class",
    "requirements_path",
    "max_concurrency",
    "max_concurrency_queue",
    "home_page",
)


class ManifestError(ValueError):
    """A manifest tekscore cannot honour; the message names the field."""


class Git(BaseModel):
    """`git`: where Racetrack clones the job from (the folder of the manifest here)."""

    model_config = ConfigDict(extra="forbid")

    remote: str
    branch: str | None = None
    directory: str = "."


class Resources(BaseModel):
    """`resources`: Kubernetes quantities."""

    model_config = ConfigDict(extra="forbid")

    memory_min: str | int | None = None
    memory_max: str | int | None = None
    cpu_min: str | int | float | None = None
    cpu_max: str | int | float | None = None


class Manifest(BaseModel):
    """The fields of `job.yaml` tekscore reads (others are checked by `parse_manifest`)."""

    model_config = ConfigDict(extra="ignore")

    name: str
    owner_email: str | None = None
    jobtype: str | None = None
    lang: str | None = None
    git: Git | None = None
    version: str = "0.0.1"
    jobtype_extra: dict[str, Any] = Field(default_factory=dict)
    build_env: dict[str, str] = Field(default_factory=dict)
    runtime_env: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, Any] = Field(default_factory=dict)
    replicas: int = 1
    resources: Resources | None = None

    @property
    def entrypoint_path(self) -> str:
        return str(self.jobtype_extra["entrypoint_path"])

    @property
    def entrypoint_class(self) -> str | None:
        value = self.jobtype_extra.get("entrypoint_class")
        return None if value is None else str(value)

    @property
    def requirements_path(self) -> str | None:
        value = self.jobtype_extra.get("requirements_path")
        return None if value is None else str(value)

    def kubernetes_resources(self) -> dict[str, dict[str, str | int | float]]:
        """`resources` as Kubernetes `requests`/`limits` (memory_min/cpu_min are requests,
        memory_max/cpu_max limits)."""
        out: dict[str, dict[str, str | int | float]] = {"requests": {}, "limits": {}}
        res = self.resources
        if res is None:
            return out
        for value, side, key in (
            (res.memory_min, "requests", "memory"),
            (res.cpu_min, "requests", "cpu"),
            (res.memory_max, "limits", "memory"),
            (res.cpu_max, "limits", "cpu"),
        ):
            if value is not None:
                out[side][key] = value
        return out


def is_manifest(data: Any) -> bool:
    """Whether a parsed document is a Racetrack job manifest (not an IR document)."""
    return (
        isinstance(data, dict)
        and "kind" not in data
        and "apiVersion" not in data
        and ("jobtype" in data or "lang" in data or ("git" in data and "owner_email" in data))
    )


def parse_manifest(data: Any) -> Manifest:
    """A manifest tekscore can run, or `ManifestError` naming what cannot hold here."""
    if not isinstance(data, dict):
        raise ManifestError("a job manifest is a mapping")
    unknown = [k for k in data if k not in MANIFEST_FIELDS]
    if unknown:
        raise ManifestError(
            f"unknown field {unknown[0]!r}; a job manifest has: {', '.join(MANIFEST_FIELDS)}"
        )
    jobtype = str(data.get("jobtype") or data.get("lang") or "")
    if jobtype.split(":", 1)[0] != "python3":
        raise ManifestError(
            f"jobtype {jobtype or '(none)'!r} is not supported; supported: python3:<version> "
            "(a class with perform)"
        )
    for field, why in (
        ("extends", "merge the base manifest into this one"),
        ("system_dependencies", "no image is built here: the packages must be installed"),
        ("secret_build_env_file", "a file on a client machine; use build_env or pip's config"),
        ("secret_runtime_env_file", "a file on a client machine; use secretRefs"),
        ("golang", "a Go job"),
        ("docker", "a Dockerfile job"),
    ):
        if data.get(field):
            raise ManifestError(f"{field} is not supported: {why}")
    extra = dict(
        data.get("jobtype_extra") or data.get("python") or data.get("wrapper_properties") or {}
    )
    unknown = [k for k in extra if k not in JOBTYPE_EXTRA]
    if unknown:
        raise ManifestError(
            f"jobtype_extra.{unknown[0]} is not supported; supported: {', '.join(JOBTYPE_EXTRA)}"
        )
    if not extra.get("entrypoint_path"):
        raise ManifestError("jobtype_extra.entrypoint_path is required (the file of the class)")
    concurrency = extra.get("max_concurrency")
    if concurrency not in (None, 1):
        raise ManifestError(
            f"jobtype_extra.max_concurrency {concurrency!r} is not supported: a model's code "
            "runs one call at a time; supported: 1"
        )
    if int(data.get("replicas") or 1) != 1:
        raise ManifestError(
            "replicas: declare a ScoringService with replicas for this model (the job's "
            "derived service has one)"
        )
    try:
        manifest = Manifest.model_validate({**data, "jobtype_extra": extra})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ManifestError(f"{where}: {first['msg']}") from exc
    return manifest


def manifest_path(folder: Path) -> Path:
    """The manifest file of a job folder: `job.yaml`, else the former `fatman.yaml`, as Racetrack
    looks for it (no file: `job.yaml`, for the error to name)."""
    path = folder / MANIFEST
    former = folder / FORMER_MANIFEST
    return former if not path.is_file() and former.is_file() else path


def read_manifest(folder: Path) -> Manifest:
    """The manifest of a job folder (`job.yaml`, or `fatman.yaml` as Racetrack reads it too)."""
    path = manifest_path(folder)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path}: {exc}") from exc
    return parse_manifest(data)
