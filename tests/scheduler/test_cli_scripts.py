"""`tekscore` as a script uses it, against a real `tekscore serve`: output piped (never wrapped
or cut), `-o json|yaml` equal to the API's objects, `list --watch` as JSON Lines, the exit codes
(0 succeeded, 1 failed, 2 usage, 3 cancelled), and which modules the light commands load."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.core
import typer.main
import yaml

from scheduler.cli.main import BUILTIN, create_app
from tests.scheduler.conftest import TOKEN, Scheduler, http_streaming_ir

TEKSCORE = str(Path(sys.executable).parent / "tekscore")
FINISHED = {"SUCCEEDED", "FAILED", "CANCELLED"}
# what `tekscore --help` and `tekscore status` must not load (DESIGN: light client commands);
# pydantic: typer's parameter checks (scheduler/cli/lean.py); pygments: httpx's own CLI
HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sklearn",
    "numpy",
    "ir",
    "scoring_service",
    "pydantic",
    "pygments",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scheduler]:
    """One real scheduling server for the module (its jobs are independent of each other)."""
    scheduler = Scheduler(
        tmp_path_factory.mktemp("cli") / "home", data_root=tmp_path_factory.getbasetemp()
    )
    scheduler.start()
    yield scheduler
    scheduler.close()  # and its jobs' processes: one of them outlived the module before


def cli(
    server: Scheduler, *args: str, cwd: Path | None = None, columns: int = 40
) -> subprocess.CompletedProcess[str]:
    """`tekscore ARGS` with stdout and stderr piped, in a narrow (40 column) environment."""
    env = {
        **os.environ,
        "TEKSCORE_SERVER": server.url,
        "TEKSCORE_TOKEN": TOKEN,
        "COLUMNS": str(columns),
    }
    return subprocess.run(
        [TEKSCORE, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=180
    )


@contextmanager
def ends(proc: subprocess.Popen[str]) -> Iterator[None]:
    """Kill `proc` if the test leaves it running (a failed assertion)."""
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.kill()


def test_submit_piped_prints_each_ir_error_whole_on_its_own_line(
    server: Scheduler, iris: Path
) -> None:
    bad = iris / "a-pipeline-file-with-a-rather-long-name-so-lines-pass-80-columns.yaml"
    bad.write_text(
        (iris / "batch.yaml")
        .read_text()
        .replace("batchSize: ${batchSize}", "batchSize: -3")
        .replace("mode: batch", "mode: sometimes")
    )
    submitted = cli(server, "submit", "model.yaml", bad.name, cwd=iris)
    assert submitted.returncode == 1, submitted.stdout + submitted.stderr
    assert submitted.stdout == ""
    validated = subprocess.run(
        [TEKSCORE, "validate", "model.yaml", bad.name],
        capture_output=True,
        text=True,
        cwd=iris,
        env={**os.environ, "COLUMNS": "40"},
        timeout=120,
    )
    lines = submitted.stderr.splitlines()
    # the same lines `tekscore validate` prints: FILE:LINE: PATH: MESSAGE, the file as given
    assert lines == validated.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert re.fullmatch(rf"{re.escape(bad.name)}:\d+: spec\.\w+: .+", line), line
        assert len(line) > 80


def test_list_piped_and_as_json_keeps_full_ids(server: Scheduler, iris: Path) -> None:
    started = [
        server.start_job([iris / "model.yaml", iris / "batch.yaml"], labels={"suite": "cli"})
        for _ in range(2)
    ]
    ids = {job["id"] for job in started}
    for job_id in ids:
        server.wait_for(job_id, FINISHED)

    as_json = cli(server, "list", "-l", "suite=cli", "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    page = json.loads(as_json.stdout)
    api = server.http.get("/api/v1/jobs", params={"label": "suite=cli", "limit": 20}).json()
    assert page == api
    assert {job["id"] for job in page["items"]} == ids

    table = cli(server, "list", "-l", "suite=cli")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["ID", "PIPELINE", "STATE", "TASK", "REASON", "CREATED"]
    assert {row.split()[0] for row in rows} == ids  # whole ids, one row per job, in 40 columns
    assert all(row.split()[2] == "SUCCEEDED" and row == row.rstrip() for row in rows), table.stdout


def test_status_and_events_as_json_and_yaml_are_the_api_objects(
    server: Scheduler, iris: Path
) -> None:
    job = server.start_job([iris / "model.yaml", iris / "batch.yaml"])
    done = server.wait_for(job["id"], FINISHED)
    assert json.loads(cli(server, "status", job["id"], "-o", "json").stdout) == done
    assert yaml.safe_load(cli(server, "status", job["id"], "-o", "yaml").stdout) == done
    events = server.http.get(f"/api/v1/jobs/{job['id']}/events").json()
    assert json.loads(cli(server, "events", job["id"], "-o", "json").stdout) == events

    table = cli(server, "events", job["id"])
    states = [line.split()[1] for line in table.stdout.splitlines()[1:]]
    assert (
        states
        == [e["state"] for e in events]
        == [
            "PENDING",
            "INSTALLING",
            "RUNNING",
            "STOPPING",
            "SUCCEEDED",
        ]
    )
    status = cli(server, "status", job["id"]).stdout.splitlines()
    assert status[0] == f"{job['id']}: SUCCEEDED reason=Completed"
    assert status[1].split() == ["FLOW", "MODE", "STATE", "IN", "OUT", "FAILED", "FILTERED"]
    assert status[2].split() == ["classify", "batch", "COMPLETED", "150", "150", "0", "0"]


def test_submit_wait_exits_0_when_the_job_succeeds_and_1_when_it_fails(
    server: Scheduler, iris: Path
) -> None:
    ok = cli(server, "submit", "model.yaml", "batch.yaml", "--wait", "-o", "json", cwd=iris)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["state"] == "SUCCEEDED"  # stdout: the final job, nothing else

    model = iris / "model.yaml"
    model.write_text(model.read_text().replace("file://model.joblib", "file://gone.joblib"))
    failed = cli(server, "submit", "model.yaml", "batch.yaml", "--wait", cwd=iris)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    job_id, state_line, *_ = failed.stdout.splitlines()
    assert state_line.startswith(f"{job_id}: FAILED task=install reason=ModelLoadFailed")


def test_submit_wait_exits_3_when_the_job_is_cancelled(server: Scheduler, iris: Path) -> None:
    env = {**os.environ, "TEKSCORE_SERVER": server.url, "TEKSCORE_TOKEN": TOKEN}
    with (
        subprocess.Popen(
            [TEKSCORE, "submit", str(iris / "model.yaml"), str(http_streaming_ir(iris)), "--wait"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        ) as waiting,
        ends(waiting),
    ):
        assert waiting.stdout is not None
        job_id = waiting.stdout.readline().strip()  # table output: the id first
        assert server.wait_for(job_id, {"RUNNING"} | FINISHED)["state"] == "RUNNING"
        cancelled = cli(server, "cancel", job_id)
        assert cancelled.returncode == 0, cancelled.stderr
        assert waiting.wait(timeout=120) == 3
        assert f"{job_id}: CANCELLED" in waiting.stdout.read()


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--limit", "0"],
        ["status"],
        ["submit", "x.yaml", "-p", "no-equals-sign"],
        ["list", "-o", "xml"],
    ],
    ids=["out-of-range", "missing-argument", "bad-parameter", "unknown-format"],
)
def test_usage_errors_exit_2(server: Scheduler, args: list[str]) -> None:
    result = cli(server, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Usage: tekscore" in result.stderr


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_list_watch_prints_each_change_as_one_json_line(server: Scheduler, iris: Path) -> None:
    env = {**os.environ, "TEKSCORE_SERVER": server.url, "TEKSCORE_TOKEN": TOKEN}
    with (
        subprocess.Popen(
            [TEKSCORE, "list", "--watch", "-o", "json", "--interval", "0.2", "-l", "suite=watch"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            # a shell's background job ignores SIGINT, and Python keeps an ignored SIGINT:
            # give the watch Ctrl-C's default whatever runs the suite
            preexec_fn=_default_sigint,
        ) as watcher,
        ends(watcher),
    ):
        job = server.start_job(
            [iris / "model.yaml", iris / "batch.yaml"], labels={"suite": "watch"}
        )
        seen: list[dict[str, Any]] = []
        assert watcher.stdout is not None
        deadline = time.monotonic() + 120
        while not seen or seen[-1]["state"] not in FINISHED:
            assert time.monotonic() < deadline, f"no final state in {seen}"
            line = watcher.stdout.readline()
            assert line, f"the watch ended: {watcher.stderr.read() if watcher.stderr else ''}"
            seen.append(json.loads(line))  # one whole job object per line
        assert {s["id"] for s in seen} == {job["id"]}
        states = [s["state"] for s in seen]
        assert states[-1] == "SUCCEEDED"
        order = ["PENDING", "INSTALLING", "RUNNING", "STOPPING", "SUCCEEDED"]
        assert states == sorted(states, key=order.index)  # changes arrive in order
        assert seen[-1] == server.job(job["id"])
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=30) == 0  # Ctrl-C ends a watch normally


def _commands(app: typer.Typer) -> set[str]:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return set(group.commands)


def test_the_builtin_command_table_matches_what_the_modules_register() -> None:
    everything = _commands(create_app(None))
    assert set(BUILTIN) <= everything
    for name in BUILTIN:  # loading one command's module registers that command
        assert name in _commands(create_app(name))
    plugins = everything - set(BUILTIN)
    assert plugins == {"serve-model", "flow", "baked", "channel", "task", "platform"}


def _imported(server: Scheduler, *args: str) -> set[str]:
    env = {**os.environ, "TEKSCORE_SERVER": server.url, "TEKSCORE_TOKEN": TOKEN}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", TEKSCORE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_help_and_status_load_no_server_model_or_ir_modules(server: Scheduler, iris: Path) -> None:
    job = server.start_job([iris / "model.yaml", iris / "batch.yaml"])
    server.wait_for(job["id"], FINISHED)  # no job left running when the module's server stops
    for args in (["--help"], ["status", job["id"]]):
        modules = _imported(server, *args)
        assert "typer" in modules  # the measurement saw the imports at all
        heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
        assert heavy == [], f"tekscore {' '.join(args)} loaded {heavy}"
    assert "httpx" in _imported(server, "status", job["id"])
