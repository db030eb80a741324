"""Each runtime's library is an extra: a server without it still starts, and a model of that
type fails its load with a reason naming the extra to install (the libraries are hidden here
by packages on PYTHONPATH that raise ImportError, as a missing install would)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.scoring_service.conftest import wait_until, write_config

EXTRAS = {
    # model type: (module imported, extra)
    "xgboost": ("xgboost", "xgboost"),
    "lightgbm": ("lightgbm", "lightgbm"),
    "pmml": ("jpmml_evaluator", "pmml"),
    "tensorflow": ("tensorflow", "tensorflow"),
    "onnx": ("onnxruntime", "onnx"),
}


def test_a_missing_extra_is_named_in_the_load_failure(tmp_path: Path, start_server: Any) -> None:
    hidden = tmp_path / "hidden"
    for module, _ in EXTRAS.values():
        (hidden / module).mkdir(parents=True)
        (hidden / module / "__init__.py").write_text(
            f"raise ImportError('{module} is hidden by the test')\n"
        )
    model = tmp_path / "model.json"
    model.write_text("{}")
    config = write_config(
        tmp_path / "service.yaml",
        [
            {
                "name": kind,
                "type": kind,
                "uri": (tmp_path if kind == "tensorflow" else model).as_uri(),
            }
            for kind in EXTRAS
        ],
    )
    path = os.pathsep.join(p for p in [str(hidden), os.environ.get("PYTHONPATH")] if p)
    srv = start_server(["--config", str(config)], env={"PYTHONPATH": path}).wait_live()
    reasons: dict[str, str] = {}

    def ended() -> bool:
        reasons.update(srv.client.get("/v2/health/ready").json().get("models", {}))
        return len(reasons) == len(EXTRAS) and "loading" not in reasons.values()

    wait_until(ended, what="every load to fail")
    for kind, (module, extra) in EXTRAS.items():
        assert reasons[kind] == (
            f"{module} is not installed: this model type needs the '{extra}' extra "
            f"(pip install 'tekscore[{extra}]')"
        )
    assert srv.client.get("/v2/health/live").status_code == 200
