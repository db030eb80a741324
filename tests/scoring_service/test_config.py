"""Configuration: the `--config` shape (one scoringServices entry, unused keys ignored),
`--model NAME=TYPE:URI` parsing, and the CLI refusing what it cannot serve (external models
and services, malformed files) with exit code 2 and a clear message."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from scoring_service.config import build_service_config, load_config_file, parse_model_option
from scoring_service.errors import ConfigError
from tests.scoring_service.conftest import IRIS_INPUT, TEKSCORE, write_config


def test_values_entry_is_accepted_and_unused_keys_ignored(tmp_path: Path) -> None:
    model = {
        "name": "iris",
        "type": "sklearn",
        "uri": "file:///abs/model.joblib",
        "sha256": None,
        "schema": {"input": IRIS_INPUT, "output": [{"name": "prediction", "type": "string"}]},
    }
    config = load_config_file(write_config(tmp_path / "svc.yaml", [model], workers=3))
    assert config.workers == 3
    assert config.models[0].schema_ is not None
    assert config.models[0].schema_.input is not None
    assert config.models[0].schema_.input[0].name == "sepal_length"


def test_model_option_parsing(tmp_path: Path) -> None:
    parsed = parse_model_option(f"m=python:{tmp_path / 'm.py'}")
    assert parsed.uri == (tmp_path / "m.py").as_uri()
    assert parse_model_option("m=sklearn:s3://b/k.joblib").uri == "s3://b/k.joblib"
    for bad in ["nothing", "m=python", "M=python:x.py", "m=pytorch:x.py"]:
        with pytest.raises(ConfigError):
            parse_model_option(bad)
    with pytest.raises(ConfigError, match="given twice"):
        build_service_config(None, ["m=python:/a.py", "m=python:/b.py"])


@pytest.mark.parametrize(
    ("models", "extra", "fragment"),
    [
        ([{"name": "e", "type": "external", "uri": "http://mlserver:8080"}], {}, "type 'external'"),
        (
            [{"name": "e", "type": "sklearn", "uri": "file:///m.joblib"}],
            {"runtime": "external"},
            "runtime 'external'",
        ),
        ([{"name": "e", "type": "sklearn", "uri": "ftp://x/m"}], {}, "models.0.uri"),
    ],
)
def test_cli_refuses_what_it_cannot_serve(
    tmp_path: Path, models: list[dict[str, str]], extra: dict[str, str], fragment: str
) -> None:
    config = write_config(tmp_path / "svc.yaml", models, **extra)
    said = tmp_path / "termination.json"
    done = subprocess.run(
        [str(TEKSCORE), "serve-model", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TEKSCORE_TERMINATION_LOG": str(said)},
    )
    assert done.returncode == 2
    assert fragment in done.stderr
    record = json.loads(said.read_text())  # what its supervisor reads
    assert record["reason"] == "InvalidConfig" and fragment in record["message"]


def test_cli_without_models_and_with_bad_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(TEKSCORE), "serve-model"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "no model to serve" in done.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [1, 2")
    done = subprocess.run(
        [str(TEKSCORE), "serve-model", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "not valid JSON/YAML" in done.stderr
