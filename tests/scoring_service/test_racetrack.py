"""Racetrack jobs as scoring-service models, with real `tekscore serve-model` processes: a job
folder (`job.yaml`, a helper class beside the class the manifest names, a requirements file
naming a package installed offline from a wheel built here) served through the records endpoint
and Racetrack's `POST /api/v1/perform` and health paths; `perform` gets only the fields it names
unless it takes `**kwargs`; the requirements' environment is made once and reused; an
unreachable package index is a clear load error; a module with two `perform` classes and no
`entrypoint_class` says how to choose."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import httpx

from common.ports import free_port
from tests.scoring_service.conftest import write_config
from tests.scoring_service.racetrack_jobs import ADDER, build_wheel, offline_pip, write_job


def test_a_job_folder_answers_perform_records_and_health(start_server: Any, tmp_path: Path) -> None:
    job = write_job(tmp_path / "adder")
    env = offline_pip(build_wheel(tmp_path / "wheels").parent, tmp_path / "venvs")
    server = start_server(["--model", f"adder=python:{job}"], env).wait_ready()

    perform = httpx.post(server.url + "/api/v1/perform", json={"numbers": [40, 2]}, timeout=30)
    assert perform.status_code == 200 and perform.json() == 42  # the return value, as it is
    extra = httpx.post(server.url + "/api/v1/perform", json={"numbers": [1, 2], "id": 7})
    assert extra.json() == 3  # perform(numbers) is not given `id`
    missing = httpx.post(server.url + "/api/v1/perform", json={"id": 7})
    assert missing.status_code == 422
    assert "missing 1 required positional argument: 'numbers'" in missing.json()["error"]
    not_object = httpx.post(server.url + "/api/v1/perform", json=[1, 2])
    assert not_object.status_code == 400

    records = httpx.post(
        server.url + "/v2/models/adder/records",
        json=[{"id": 1, "numbers": [1, 1]}, {"id": 2}],
        timeout=30,
    )
    assert records.json()[0] == {"output": 2}
    assert "missing 1 required positional argument" in records.json()[1]["$error"]
    metadata = httpx.get(server.url + "/v2/models/adder").json()
    assert metadata["parameters"] == {"convention": "racetrack"}

    assert httpx.get(server.url + "/live").json() == {"live": True}
    assert httpx.get(server.url + "/ready").status_code == 200
    health = httpx.get(server.url + "/health").json()
    assert health["job_name"] == "adder" and health["status"] == "pass"


KWARGS = """
    import os


    class Echo:
        def perform(self, **kwargs):
            return {"fields": sorted(kwargs), "greeting": os.environ["GREETING"]}
"""


def test_perform_with_kwargs_gets_every_field_and_runtime_env_is_set(
    start_server: Any, tmp_path: Path
) -> None:
    job = write_job(
        tmp_path / "echo",
        name="echo",
        code=KWARGS,
        requirements=None,
        extra={"entrypoint_class": "Echo"},
        runtime_env={"GREETING": "hello"},
    )
    server = start_server(["--model", f"echo=python:{job}"]).wait_ready()
    answer = httpx.post(server.url + "/api/v1/perform", json={"b": 1, "a": 2, "id": 3})
    assert answer.json() == {"fields": ["a", "b", "id"], "greeting": "hello"}


def test_the_requirements_environment_is_made_once(start_server: Any, tmp_path: Path) -> None:
    job = write_job(tmp_path / "adder")
    env = offline_pip(build_wheel(tmp_path / "wheels").parent, tmp_path / "venvs")
    first = start_server(["--model", f"adder=python:{job}"], env).wait_ready()
    assert '"requirements installed"' in first.log()
    (made,) = list((tmp_path / "venvs").glob("*/.complete"))
    first.stop()
    second = start_server(["--model", f"adder=python:{job}"], env).wait_ready()
    assert '"requirements installed"' not in second.log()
    assert list((tmp_path / "venvs").glob("*/.complete")) == [made]
    answer = httpx.post(second.url + "/api/v1/perform", json={"numbers": [2, 3]})
    assert answer.json() == 5


def test_an_unreachable_package_index_is_a_clear_load_error(
    start_server: Any, tmp_path: Path
) -> None:
    job = write_job(tmp_path / "adder")
    index = f"http://127.0.0.1:{free_port()}/simple"  # nothing listens there
    env = {"PIP_INDEX_URL": index, "TEKSCORE_VENV_CACHE": str(tmp_path / "venvs")}
    server = start_server(["--model", f"adder=python:{job}"], env).wait_live()

    def failed() -> dict[str, Any] | None:
        answer = httpx.get(server.url + "/v2/models/adder/ready", timeout=5)
        body: dict[str, Any] = answer.json()
        return body if body.get("state") == "failed" else None

    from tests.scoring_service.conftest import wait_until

    wait_until(lambda: failed() is not None, timeout=180, what="the load to fail")
    reason = (failed() or {})["error"]
    assert f"installing requirements.txt failed: the package index {index} cannot be reached" in (
        reason
    )
    assert not list((tmp_path / "venvs").glob("*/.complete"))  # nothing half-made is kept


def test_two_perform_classes_need_the_manifest_to_name_one(
    start_server: Any, tmp_path: Path
) -> None:
    code = ADDER.replace("import tinyadd", "").replace("tinyadd.add(numbers)", "sum(numbers)")
    job = write_job(
        tmp_path / "adder", code=code, requirements=None, extra={"entrypoint_class": None}
    )
    text = (job / "job.yaml").read_text().replace("  entrypoint_class: null\n", "")
    (job / "job.yaml").write_text(text)
    config = write_config(
        tmp_path / "svc.yaml", [{"name": "adder", "type": "python", "uri": job.as_uri()}]
    )
    server = start_server(["--config", str(config)]).wait_live()

    def reason() -> str:
        body = httpx.get(server.url + "/v2/models/adder/ready", timeout=5).json()
        return str(body.get("error", "")) if body.get("state") == "failed" else ""

    from tests.scoring_service.conftest import wait_until

    wait_until(reason, what="the load to fail")
    assert "several classes with perform(): Helper, AdderModel" in reason()
    assert "jobtype_extra.entrypoint_class" in reason()


FORMER = """
    class FatmanEntrypoint:
        def perform(self, x: float, y: float) -> float:
            return x * y
"""


def test_a_job_folder_with_the_former_fatman_manifest(start_server: Any, tmp_path: Path) -> None:
    """Racetrack's earlier manifest: `fatman.yaml`, `lang` and a `python` block."""
    folder = tmp_path / "supersmart"
    folder.mkdir()
    (folder / "fatman_entrypoint.py").write_text(textwrap.dedent(FORMER))
    (folder / "fatman.yaml").write_text(
        "name: supersmart\n"
        "owner_email: nobody@example.com\n"
        "lang: python3:latest\n"
        "git:\n"
        "  remote: https://github.com/racetrack/supersmart-model\n"
        "python:\n"
        "  entrypoint_path: 'fatman_entrypoint.py'\n"
        "  entrypoint_class: 'FatmanEntrypoint'\n"
    )
    server = start_server(["--model", f"supersmart=python:{folder}"]).wait_ready()
    answer = httpx.post(server.url + "/api/v1/perform", json={"x": 6, "y": 7}, timeout=30)
    assert answer.status_code == 200 and answer.json() == 42
    assert httpx.get(server.url + "/health").json()["job_name"] == "supersmart"
