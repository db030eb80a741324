"""Fixtures of the local runner tests: a trained iris model in a temporary folder (trained once)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IRIS


@pytest.fixture(scope="session")
def trained_iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with `model.joblib` and `input.jsonl` (150 records) from examples/iris/train.py."""
    out = tmp_path_factory.mktemp("iris-model")
    subprocess.run(
        [sys.executable, str(IRIS / "train.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out
