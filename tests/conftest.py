"""Fixtures shared by every test folder: the repository root and the iris example's files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IRIS = ROOT / "examples" / "iris"
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def iris_dir() -> Path:
    """examples/iris with its model trained (train.py is run once when model.joblib is missing)."""
    if not (IRIS / "model.joblib").exists():
        subprocess.run([sys.executable, str(IRIS / "train.py")], check=True, capture_output=True)
    return IRIS
