"""Warm spares (`local_runner.warm`, docs/local-backend.md) through real servers: the iris job
handed to a set of spares scores exactly what a cold start scores, the set is replaced by a new
one, and, in the bubblewrap sandbox, a spare waits sandboxed with nothing of any job and the job
it serves sees its own folder and environment only, nothing of the job before it."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import psutil
import pytest

from local_runner.environment import PASSED
from local_runner.sandbox import find_bwrap
from scheduler.auth import callback_token
from tests.attacks import one_flow
from tests.scheduler.conftest import Scheduler

BWRAP = find_bwrap()
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SERVER_SECRET = "test-secret"  # what Scheduler sets as TEKSCORE_SECRET


def ready_events(server: Scheduler) -> list[dict[str, Any]]:
    """The server's `warm spares ready` events, in order."""
    events = []
    for line in server.log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "warm spares ready":
            events.append(event)
    return events


def ready_sets(server: Scheduler) -> list[list[int]]:
    """The pids of each set of spares the server said was ready, in order."""
    return [[int(p) for p in event["pids"]] for event in ready_events(server)]


def wait_ready_sets(server: Scheduler, count: int, timeout: float = 120) -> list[list[int]]:
    deadline = time.monotonic() + timeout
    while len(sets := ready_sets(server)) < count:
        assert time.monotonic() < deadline, (
            f"no set of spares ready: {server.log.read_text()[-3000:]}"
        )
        time.sleep(0.1)
    return sets


def started(server: Scheduler, job_id: str) -> list[dict[str, Any]]:
    """The server's `process started` events of a job."""
    out = []
    for line in server.log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(event, dict)
            and event.get("event") == "process started"
            and event.get("job_id") == job_id
        ):
            out.append(event)
    return out


def recorded_pids(server: Scheduler, job_id: str) -> set[int]:
    table = json.loads((server.home / "jobs" / job_id / "processes.json").read_text())
    return {int(p["pid"]) for p in table["processes"]}


@pytest.fixture(scope="module")
def land(tmp_path_factory: pytest.TempPathFactory, iris_dir: Path) -> Path:
    """The data root: two copies of examples/iris (one per server), and the server homes."""
    base = tmp_path_factory.mktemp("warm")
    for copy in ("warm-iris", "cold-iris"):
        (base / copy).mkdir()
        for name in ("model.yaml", "batch.yaml", "input.jsonl", "model.joblib"):
            shutil.copy(iris_dir / name, base / copy / name)
    return base


@pytest.fixture(scope="module")
def warm(land: Path) -> Iterator[Scheduler]:
    """A server with warm spares (the default), in the sandbox when bubblewrap works here."""
    server = Scheduler(
        land / "warm-home",
        data_root=land,
        extra_env={"TEKSCORE_SANDBOX": "required" if BWRAP else "off"},
    )
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def cold(land: Path) -> Iterator[Scheduler]:
    """The same server with warm spares turned off: every process starts cold."""
    server = Scheduler(
        land / "cold-home",
        data_root=land,
        extra_env={
            "TEKSCORE_SANDBOX": "required" if BWRAP else "off",
            "TEKSCORE_WARM_RUNTIMES": "0",
        },
    )
    server.start()
    yield server
    server.close()


def test_the_iris_job_through_warm_spares_scores_as_a_cold_start_and_the_spares_are_replaced(
    warm: Scheduler, cold: Scheduler, land: Path
):
    [first] = wait_ready_sets(warm, 1)
    assert len(first) == 2
    jobs = {}
    for name, server in (("warm", warm), ("cold", cold)):
        folder = land / f"{name}-iris"
        jobs[name] = server.start_job([folder / "model.yaml", folder / "batch.yaml"])
    for name, server in (("warm", warm), ("cold", cold)):
        done = server.wait_for(jobs[name]["id"], {"SUCCEEDED", "FAILED", "CANCELLED"})
        assert done["state"] == "SUCCEEDED", done
        assert done["flows"]["classify"]["records_out"] == 150
        jobs[name] = done
    outputs = {
        name: (land / f"{name}-iris" / "output" / "scored.jsonl").read_text().splitlines()
        for name in ("warm", "cold")
    }
    assert outputs["warm"] == outputs["cold"]  # the same records, the same order
    inputs = [
        json.loads(line) for line in (land / "warm-iris" / "input.jsonl").read_text().splitlines()
    ]
    expected = joblib.load(land / "warm-iris" / "model.joblib").predict(
        [[r[f] for f in FEATURES] for r in inputs]
    )
    assert [json.loads(line)["species"] for line in outputs["warm"]] == list(expected)

    # the warm job's service and flow are the spares of the first set; the cold one's are not
    warm_id, cold_id = jobs["warm"]["id"], jobs["cold"]["id"]
    assert recorded_pids(warm, warm_id) == set(first)
    assert {e["process"]: e["warm"] for e in started(warm, warm_id)} == {
        "service iris": True,
        "flow classify": True,
    }
    # each to the spare of its role: the service to the one with scikit-learn imported
    roles = dict(zip(first, ready_events(warm)[0]["roles"], strict=True))
    assert {e["process"]: roles[e["pid"]] for e in started(warm, warm_id)} == {
        "service iris": "service",
        "flow classify": "flow",
    }
    assert {e["process"]: e["warm"] for e in started(cold, cold_id)} == {
        "service iris": False,
        "flow classify": False,
    }
    assert not set(first) & recorded_pids(cold, cold_id)
    assert ready_sets(cold) == []
    # the logs of the job's processes are the job's, as from a cold start
    for server, job_id in ((warm, warm_id), (cold, cold_id)):
        logs = server.http.get(f"/api/v1/jobs/{job_id}/logs", params={"service": "iris"})
        assert logs.status_code == 200, logs.text
        assert "model_ready" in logs.text

    # a new set replaces the one the job took; the used spares are gone with the job
    sets = wait_ready_sets(warm, 2)
    assert not set(sets[1]) & set(first)
    assert warm.job_processes(warm_id) == []
    assert not [p for p in first if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]


SPY = """
import os


def transform(records):
    out = []
    for r in records:
        env = dict(os.environ)
        reads = {}
        for path in r["read"]:
            try:
                with open(path, "rb") as f:
                    reads[path] = "read %d bytes" % len(f.read())
            except OSError as exc:
                reads[path] = type(exc).__name__
        here = sorted(os.listdir("."))
        out.append({"env": env, "reads": reads, "here": here, "name": r["name"]})
    return out
"""


def spy_job(server: Scheduler, land: Path, name: str, read: list[str]) -> dict[str, Any]:
    """A batch job whose python step reports its environment, the files of its working folder
    and what it could read of `read`; its record in `land/<name>.jsonl`."""
    (land / "spy.py").write_text(SPY)
    record = json.dumps({"name": name, "read": read})
    ir = one_flow(
        f"{{type: inline, config: {{records: [{record}]}}}}",
        sink=f"{{type: file, format: {{encoding: jsonl}}, config: {{path: {name}.jsonl}}}}",
        steps="[{type: python, uri: file://spy.py}]",
        name=name,
    )
    (land / f"{name}.yaml").write_text(ir)
    job = server.start_job([land / f"{name}.yaml"])
    job = server.wait_for(job["id"], {"SUCCEEDED", "FAILED", "CANCELLED"})
    assert job["state"] == "SUCCEEDED", job
    [line] = (land / f"{name}.jsonl").read_text().splitlines()
    return {"job": job, **json.loads(line)}


@pytest.mark.skipif(BWRAP is None, reason="bubblewrap is not installed (.ci/run installs it)")
def test_a_spare_waits_sandboxed_and_serves_one_job_with_nothing_of_another(
    warm: Scheduler, land: Path
):
    spares = idle_set(warm)
    for pid in spares:
        proc = psutil.Process(pid)
        assert Path(proc.cmdline()[0]).name == "bwrap"  # the sandbox a job's process gets
        python = [p for p in proc.children(recursive=True) if "local_runner.spare" in p.cmdline()]
        assert python, proc.children(recursive=True)
        env = python[0].environ()
        # it waits with what every job process starts from, nothing of any job
        assert not {k for k in env if not k.startswith("LC_")} - {*PASSED, "HOME", "TMPDIR"}
        assert str(warm.home / "spares") in env["HOME"]
    first = spy_job(warm, land, "first", [])
    first_id = first["job"]["id"]
    # one process, a flow: the flow spare; the service spare was stopped
    assert recorded_pids(warm, first_id) == {spares[1]}
    assert not psutil.pid_exists(spares[0]) or psutil.Process(spares[0]).status() == "zombie"
    after = idle_set(warm)
    assert not set(after) & set(spares)
    first_dir = warm.home / "jobs" / first_id
    second = spy_job(
        warm,
        land,
        "second",
        [str(first_dir / "flows" / "f.json"), str(warm.home / "state.db")],
    )
    second_id = second["job"]["id"]
    assert set(recorded_pids(warm, second_id)).isdisjoint(spares)
    assert all(e["warm"] for e in started(warm, second_id))
    env = second["env"]
    assert env["TEKSCORE_JOB_ID"] == second_id
    assert env["TEKSCORE_CALLBACK_TOKEN"] == callback_token(SERVER_SECRET.encode(), second_id)
    # nothing of the first job in the second's environment, nothing beyond a cold start's
    assert first_id not in json.dumps(env)
    assert first["env"]["TEKSCORE_CALLBACK_TOKEN"] not in json.dumps(env)
    assert not {k for k in env if not k.startswith(("TEKSCORE_", "LC_"))} - {
        *PASSED, "HOME", "TMPDIR", "JOB_COMPLETION_INDEX", "PWD",
    }  # fmt: skip
    # its working folder is its own job's folder; the first job's files and the state are hidden
    second_dir = warm.home / "jobs" / second_id
    assert second["here"] == sorted(
        p.name for p in second_dir.iterdir() if p.name in second["here"]
    )
    assert {"flows", "processes.json", "tmp"} <= set(second["here"])
    assert set(second["reads"].values()) == {"FileNotFoundError"}
    # and its termination record, written through the sandbox, says how it ended
    said = json.loads((second_dir / "flows" / "f.termination.json").read_text())
    assert said["reason"] == "Completed"


def idle_set(server: Scheduler, timeout: float = 120) -> list[int]:
    """The pids of a ready set no job has taken (waits for one)."""
    deadline = time.monotonic() + timeout
    while True:
        sets = ready_sets(server)
        taken = {pid for job in (server.home / "jobs").glob("*/processes.json") for pid in
                 recorded_pids(server, job.parent.name)}  # fmt: skip
        if sets and not set(sets[-1]) & taken:
            return sets[-1]
        assert time.monotonic() < deadline, (
            f"no idle set of spares: {server.log.read_text()[-3000:]}"
        )
        time.sleep(0.1)
