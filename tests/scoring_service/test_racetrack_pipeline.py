"""A Racetrack job in a scoring pipeline: its `job.yaml` is read as the IR `Model` of its folder
(resources.memory_max becoming the derived service's memory limit, in the values and so in the
chart), scored through a flow by a real scheduled job (`tekscore run`, the local backend) where
records carry more fields than `perform` names, its memory limit enforced on the local service
process, and its code fetched from git when the server has a git server; manifests that cannot
run here are refused by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import ir
from ir.errors import IRValidationError
from local_runner.processes import memory_bytes, spawn
from tests.scoring_service.conftest import TEKSCORE
from tests.scoring_service.racetrack_jobs import build_wheel, offline_pip, write_job

PIPELINE = """
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {name: adding}
spec:
  models: [adder]
  dataChannels:
    - name: numbers
      direction: source
      type: inline
      config: {records: [{id: 1, numbers: [40, 2]}, {id: 2, numbers: [1, 2, 3]}]}
    - {name: sums, direction: sink, type: file, config: {path: sums.jsonl}}
    - {name: rejected, direction: sink, type: file, config: {path: rejected.jsonl}}
  scoringFlows:
    - name: add
      mode: batch
      source: numbers
      sink: sums
      deadLetter: rejected
      steps: [{type: score, model: adder, outputs: {output: total}}]
      POLICY
"""


def pipeline(folder: Path, policy: str = "") -> Path:
    path = folder / "pipeline.yaml"
    path.write_text(PIPELINE.replace("POLICY", policy))
    return path


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TEKSCORE), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


def test_the_manifest_is_the_model_and_its_memory_max_the_service_limit(tmp_path: Path) -> None:
    job = write_job(
        tmp_path / "adder",
        resources={"memory_min": "256Mi", "memory_max": "1Gi", "cpu_max": "1000m"},
        labels={"team": "ml"},
    )
    rendered = ir.preprocess(ir.load_paths([pipeline(tmp_path), job / "job.yaml"]))
    (service,) = rendered.values["scoringServices"]
    assert service["derived"] is True
    assert service["resources"] == {
        "requests": {"memory": "256Mi"},
        "limits": {"memory": "1Gi", "cpu": "1000m"},
    }
    (model,) = service["models"]
    assert model["uri"] == f"file://{job}" and model["type"] == "python"


def test_a_job_sent_as_text_with_a_relative_name_is_the_model_of_that_folder(
    tmp_path: Path,
) -> None:
    """What a modelops server sends to `POST /api/v1/jobs`: `{"files": {"adder/job.yaml": ...}}`
    with `base_dir`: the job's folder is `base_dir/adder`, as `tekscore render adder/job.yaml`
    run in `base_dir` reads it; so do a relative file name's own relative paths."""
    job = write_job(tmp_path / "adder")
    files = {
        "adder/job.yaml": (job / "job.yaml").read_text(),
        "pipeline.yaml": pipeline(tmp_path).read_text(),
    }
    rendered = ir.preprocess(ir.load_texts(files, base_dir=tmp_path))
    (service,) = rendered.values["scoringServices"]
    (model,) = service["models"]
    assert model["uri"] == f"file://{job}"
    absolute = {str(job / "job.yaml"): files["adder/job.yaml"], "p.yaml": files["pipeline.yaml"]}
    rendered = ir.preprocess(ir.load_texts(absolute, base_dir=tmp_path / "elsewhere"))
    assert rendered.values["scoringServices"][0]["models"][0]["uri"] == f"file://{job}"


def test_a_job_scored_through_a_scheduled_flow(tmp_path: Path) -> None:
    job = write_job(tmp_path / "adder")
    env = offline_pip(build_wheel(tmp_path / "wheels").parent, tmp_path / "venvs")
    done = run(
        "run",
        str(pipeline(tmp_path)),
        str(job / "job.yaml"),
        "--home",
        str(tmp_path / "home"),
        "-o",
        "json",
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["state"] == "SUCCEEDED"
    sums = [json.loads(line) for line in (tmp_path / "sums.jsonl").read_text().splitlines()]
    assert sums == [
        {"id": 1, "numbers": [40, 2], "total": 42},
        {"id": 2, "numbers": [1, 2, 3], "total": 6},
    ]


HUNGRY = """
    class Hungry:
        def perform(self, numbers):
            block = bytearray(600 * 1024 * 1024)  # more than the job's memory_max
            return len(block) + len(numbers)
"""


def test_memory_max_is_enforced_on_the_local_service(tmp_path: Path) -> None:
    job = write_job(
        tmp_path / "adder",
        code=HUNGRY,
        requirements=None,
        extra={"entrypoint_class": "Hungry"},
        resources={"memory_max": "300Mi"},
    )
    done = run(
        "run",
        str(pipeline(tmp_path, "maxFailedRatio: 1.0")),
        str(job / "job.yaml"),
        "--home",
        str(tmp_path / "home"),
        "-o",
        "json",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rejected = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert len(rejected) == 2
    assert all("MemoryError" in r["reason"] for r in rejected), rejected


def test_spawn_limits_the_data_memory_of_a_process(tmp_path: Path) -> None:
    assert memory_bytes("300Mi") == 300 * 2**20 and memory_bytes("1G") == 10**9
    assert memory_bytes("1.5Gi") == 3 * 2**29 and memory_bytes(2048) == 2048
    script = "bytearray(600 * 1024 * 1024); print('allocated')"
    for limit, code in ((memory_bytes("300Mi"), 1), (None, 0)):
        proc = spawn(
            command=[sys.executable, "-c", script],
            log=tmp_path / f"{limit}.log",
            env=dict(os.environ),
            cwd=tmp_path,
            memory_limit=limit,
        )
        assert proc.wait(60) == code
    assert "MemoryError" in (tmp_path / f"{memory_bytes('300Mi')}.log").read_text()


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@e",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@e",
        },
    )


def test_a_job_from_git_under_the_servers_git_server(tmp_path: Path) -> None:
    source = tmp_path / "work"
    write_job(source / "jobs" / "adder")
    git("init", "-q", "-b", "release", str(source), cwd=tmp_path)
    git("add", ".", cwd=source)
    git("commit", "-q", "-m", "the adder job", cwd=source)
    server = tmp_path / "git"
    git("clone", "-q", "--bare", str(source), str(server / "ml" / "adder.git"), cwd=tmp_path)
    model = {
        "apiVersion": "tekscore.dev/v1",
        "kind": "Model",
        "metadata": {"name": "adder"},
        "spec": {
            "type": "python",
            "uri": f"git+file://{server}/ml/adder.git@release#subdirectory=jobs/adder",
        },
    }
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(model))
    paths = [pipeline(tmp_path), tmp_path / "model.yaml"]
    with pytest.raises(IRValidationError, match="needs the server's git server"):
        ir.preprocess(ir.load_paths(paths))
    elsewhere = ir.GlobalValues.model_validate({"gitServer": "https://git.example.com"})
    with pytest.raises(IRValidationError, match="is not under the server's git server"):
        ir.preprocess(ir.load_paths(paths), globals_=elsewhere)

    globals_file = tmp_path / "globals.yaml"
    globals_file.write_text(yaml.safe_dump({"gitServer": f"file://{server}"}))
    env = {
        **offline_pip(build_wheel(tmp_path / "wheels").parent, tmp_path / "venvs"),
        "TEKSCORE_GLOBALS": str(globals_file),
    }
    done = run("run", *map(str, paths), "--home", str(tmp_path / "home"), "-o", "json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    sums = [
        json.loads(line)["total"] for line in (tmp_path / "sums.jsonl").read_text().splitlines()
    ]
    assert sums == [42, 6]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"jobtype": "golang:latest"},
            "jobtype 'golang:latest' is not supported; supported: python3",
        ),
        ({"system_dependencies": ["libgomp1"]}, "system_dependencies is not supported"),
        ({"name": "my_fantabulous_skynet_AI"}, "must be a DNS-1123 label"),
        ({"extends": "../base/job.yaml"}, "extends is not supported"),
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"replicas": 3}, "replicas: declare a ScoringService with replicas"),
    ],
)
def test_manifests_that_cannot_run_here_are_refused_by_name(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    job = write_job(tmp_path / "adder", requirements=None)
    doc = {**yaml.safe_load((job / "job.yaml").read_text()), **change}
    (job / "job.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(IRValidationError) as info:
        ir.load_paths([job / "job.yaml"])
    assert message in str(info.value)
