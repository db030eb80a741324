"""Issue 12's attacks on what a job may touch, through the real HTTP API of a real
`tekscore serve` whose home lies inside its data root (the hardest case for the rules): reading
host files (`/etc/passwd`, a relative path with `base_dir: "/"`, a dead letter in another job's
folder), overwriting `state.db`, code from a URL or any file, a python step dumping its
environment and forging another job's callback, and, with bubblewrap installed, a python step
reading the state database and a file outside the data roots. Each is answered as
docs/security.md says."""

from __future__ import annotations

import importlib.util
import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import psutil
import pytest

from local_runner.environment import PASSED
from local_runner.sandbox import find_bwrap
from scheduler.auth import callback_token
from tests.attacks import one_flow as pipeline
from tests.scheduler.conftest import TOKEN, Scheduler
from tests.scoring_flow.conftest import s3  # noqa: F401 (the moto S3 server fixture)
from tests.scoring_service.runtimes import RISK_PMML

JOBS = "/api/v1/jobs"
SERVER_SECRET = "test-secret"  # what Scheduler sets as TEKSCORE_SECRET
SECRETS = {
    "TEKSCORE_SECRET_S3_CREDS_ACCESS_KEY": "testing",
    "TEKSCORE_SECRET_S3_CREDS_SECRET_KEY": "testing",
    "TEKSCORE_SECRET_OTHER_TEAM_PASSWORD": "another-teams-password",
}
BWRAP = find_bwrap()


@pytest.fixture(scope="module")
def land(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`data/` (the data root and code source, with the server's home inside it) and `outside/`
    (a folder of the same machine no job may reach)."""
    base = tmp_path_factory.mktemp("land")
    (base / "data").mkdir()
    (base / "outside").mkdir()
    (base / "outside" / "passwd").write_text("root:x:0:0:the host's own file\n")
    return base


@pytest.fixture(scope="module")
def server(land: Path) -> Iterator[Scheduler]:
    scheduler = Scheduler(
        land / "data" / "home",
        data_root=land / "data",
        extra_env={
            **SECRETS,
            "TEKSCORE_SANDBOX": "required" if BWRAP else "auto",
            "TEKSCORE_PROGRESS_INTERVAL": "0.2",
        },
    )
    scheduler.start()
    yield scheduler
    scheduler.close()


def files(folder: Path, **texts: str) -> dict[str, Any]:
    """A start request: IR text files written in `folder`, sent with their absolute names."""
    out = {}
    for name, text in texts.items():
        path = folder / name
        path.write_text(textwrap.dedent(text))
        out[str(path)] = path.read_text()
    return {"pipeline": {"files": out}}


def refused(server: Scheduler, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The 422's errors for a start request (and that no job was created)."""
    before = len(server.http.get(JOBS, params={"limit": 500}).json()["items"])
    response = server.http.post(JOBS, json=body)
    assert response.status_code == 422, response.text
    assert len(server.http.get(JOBS, params={"limit": 500}).json()["items"]) == before
    errors: list[dict[str, Any]] = response.json()["errors"]
    return errors


def test_a_source_reading_etc_passwd_is_refused_naming_the_path_and_the_roots(server, land):
    errors = refused(
        server,
        files(land / "data", **{"p.yaml": pipeline("{type: file, config: {path: /etc/passwd}}")}),
    )
    assert errors == [
        {
            "loc": ["spec", "dataChannels", 0, "config", "path"],
            "msg": f"/etc/passwd is outside the data roots ({land / 'data'}): setting "
            "TEKSCORE_DATA_ROOTS",
            "file": str(land / "data" / "p.yaml"),
            "line": 6,
        }
    ]


def test_a_relative_path_against_base_dir_root_is_refused(server, land):
    body = {
        "pipeline": {"files": {"p.yaml": pipeline("{type: file, config: {path: etc/passwd}}")}},
        "base_dir": "/",
    }
    [error] = refused(server, body)
    assert (error["file"], error["line"]) == ("p.yaml", 6)
    assert error["msg"].startswith("/etc/passwd is outside the data roots")


def test_a_dead_letter_in_another_jobs_folder_is_refused_and_logs_stay_the_jobs_own(server, land):
    victim = server.start_job([write(land / "data" / "victim.yaml", pipeline(name="victim"))])
    victim = server.wait_for(victim["id"], {"SUCCEEDED"})
    flows = server.home / "jobs" / victim["id"] / "flows"
    before = {p.name: p.read_bytes() for p in flows.iterdir()}
    for target in (flows / "f.log", flows / "stolen.log"):
        dead = f"{{type: file, config: {{path: {target}}}}}"
        [error] = refused(server, files(land / "data", **{"p.yaml": pipeline(dead_letter=dead)}))
        assert error["loc"] == ["spec", "dataChannels", 2, "config", "path"]
        assert error["msg"] == (
            f"{target} is inside the server's state folder, which no job may touch"
        )
    assert {p.name: p.read_bytes() for p in flows.iterdir()} == before
    logs = server.http.get(f"{JOBS}/{victim['id']}/logs", params={"flow": "f"})
    assert logs.status_code == 200
    assert logs.text.startswith("==> flow/f <==\n")
    missing = server.http.get(f"{JOBS}/{victim['id']}/logs", params={"flow": "stolen"})
    assert missing.status_code == 404


def test_a_sink_on_the_state_database_is_refused_directly_or_through_a_symlink(server, land):
    state = server.home / "state.db"
    link = land / "data" / "innocent.jsonl"
    link.symlink_to(state)
    before = state.read_bytes()[:16]
    for path, how in ((state, " is"), (link, " leads (through a symlink or '..')")):
        sink = f"{{type: file, config: {{path: {path}}}}}"
        [error] = refused(server, files(land / "data", **{"p.yaml": pipeline(sink=sink)}))
        assert (
            error["msg"] == f"{path}{how} inside the server's state folder, which no job may touch"
        )
    assert before == b"SQLite format 3\x00"
    assert server.http.get("/readyz").status_code == 200


def test_code_from_a_url_or_any_file_is_refused(server, land):
    evil = land / "outside" / "x.py"
    evil.write_text("import os\ndef transform(records):\n    os.system('touch /tmp/owned')\n")
    for uri in ("http://127.0.0.1:9/evil.py", f"file://{evil}", "file:///any/x.py"):
        steps = f"[{{type: python, uri: '{uri}'}}]"
        [error] = refused(server, files(land / "data", **{"p.yaml": pipeline(steps=steps)}))
        assert error["loc"] == ["spec", "scoringFlows", 0, "steps", 0, "uri"]
        assert error["msg"].startswith(f"{uri} is not from a code source ({land / 'data'}): ")
        assert "setting TEKSCORE_CODE_SOURCES" in error["msg"]
    model = f"""\
        apiVersion: tekscore.dev/v1
        kind: Model
        metadata: {{name: m}}
        spec: {{type: python, uri: 'file://{evil}'}}
        """
    score = pipeline(steps="[{type: score, model: m}]")
    [error] = refused(server, files(land / "data", **{"m.yaml": model, "p.yaml": score}))
    assert (error["loc"], error["line"]) == (["spec", "uri"], 4)


def test_a_finished_job_refuses_reports_with_409_and_stays_as_it_ended(server, land):
    job = server.start_job([write(land / "data" / "done.yaml", pipeline(name="done"))])
    job = server.wait_for(job["id"], {"SUCCEEDED"})
    token = callback_token(SERVER_SECRET.encode(), job["id"])
    report = {"records_in": 35904, "records_out": 35904, "records_failed": 0}
    for what in ("progress", "complete"):
        for bearer in (token, TOKEN):  # the job's own callback token; an admin token
            response = httpx.post(
                f"{server.url}{JOBS}/{job['id']}/flows/f/{what}",
                json=report,
                headers={"Authorization": f"Bearer {bearer}"},
            )
            assert response.status_code == 409, response.text
            assert response.json()["state"] == "SUCCEEDED"
    after = server.job(job["id"])
    assert after == job
    assert after["flows"]["f"]["records_in"] == 1


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------- a hostile python step

SPY = """
import os

import httpx


def transform(records):
    out = []
    for r in records:
        env = dict(os.environ)
        url, token = env["TEKSCORE_CALLBACK_URL"], env["TEKSCORE_CALLBACK_TOKEN"]
        report = {"records_in": 999999, "records_out": 999999, "records_failed": 0}
        calls = {}
        for who, job, flow in (("victim", r["victim"], "serve"), ("self", env["TEKSCORE_JOB_ID"], "f")):
            answer = httpx.post(
                f"{url}/api/v1/jobs/{job}/flows/{flow}/progress",
                json=report if who == "victim" else {"records_in": 0, "records_out": 0, "records_failed": 0},
                headers={"Authorization": f"Bearer {token}"},
            )
            calls[who] = answer.status_code
        reads = {}
        for path in r["read"]:
            try:
                with open(path, "rb") as f:
                    reads[path] = "read %d bytes" % len(f.read())
            except OSError as exc:
                reads[path] = type(exc).__name__
        out.append({"env": env, "calls": calls, "reads": reads})
    return out
"""


@pytest.fixture(scope="module")
def spied(server: Scheduler, land: Path, s3: str) -> dict[str, Any]:  # noqa: F811
    """A streaming victim job, then a batch job whose python step dumps its environment, forges
    the victim's progress report, and reads the state database and a file outside the data
    roots; its records go to an S3 object written with the secret keys its pipeline names."""
    victim_ir = pipeline(
        "{type: http, config: {port: 8090}}", mode="streaming", name="victim"
    ).replace("name: f,", "name: serve,")
    victim = server.start_job([write(land / "data" / "streaming.yaml", victim_ir)])
    victim = server.wait_for(victim["id"], {"RUNNING"})
    write(land / "data" / "spy.py", SPY)
    record = json.dumps(
        {
            "victim": victim["id"],
            "read": [str(server.home / "state.db"), str(land / "outside" / "passwd")],
        }
    )
    client = boto3.client(
        "s3",
        endpoint_url=s3,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    bucket = "spied"
    client.create_bucket(Bucket=bucket)
    sink = (
        f"{{type: s3, config: {{bucket: {bucket}, key: out.jsonl, endpointUrl: '{s3}', "
        "accessKeyId: {secretRef: {name: s3-creds, key: access-key}}, "
        "secretAccessKey: {secretRef: {name: s3-creds, key: secret-key}}}}"
    )
    spy_ir = pipeline(
        f"{{type: inline, config: {{records: [{record}]}}}}",
        sink=sink,
        steps="[{type: python, uri: file://spy.py}]",
        name="spy",
    )
    spy = server.start_job([write(land / "data" / "spy.yaml", spy_ir)])
    spy = server.wait_for(spy["id"], {"SUCCEEDED", "FAILED"})
    assert spy["state"] == "SUCCEEDED", spy
    body = client.get_object(Bucket=bucket, Key="out.jsonl")["Body"].read()
    [line] = body.decode().splitlines()
    return {"spy": spy, "victim": victim, **json.loads(line)}


def test_a_python_step_sees_only_its_own_environment(server, spied):
    env = spied["env"]
    assert env["TEKSCORE_JOB_ID"] == spied["spy"]["id"]
    assert env["TEKSCORE_CALLBACK_TOKEN"] == callback_token(
        SERVER_SECRET.encode(), spied["spy"]["id"]
    )
    # the secret keys its pipeline names, and they worked: the records reached S3
    assert env["TEKSCORE_SECRET_S3_CREDS_ACCESS_KEY"] == "testing"
    assert env["TEKSCORE_SECRET_S3_CREDS_SECRET_KEY"] == "testing"
    # nothing else of the server's
    for name in ("TEKSCORE_API_TOKENS", "TEKSCORE_SECRET", "TEKSCORE_SECRET_OTHER_TEAM_PASSWORD",
                 "TEKSCORE_HOME", "TEKSCORE_DATA_ROOTS", "TEKSCORE_GRACE_PERIOD"):  # fmt: skip
        assert name not in env
    # what the child's runtime reads (locale, pip's settings for a model's requirements) and
    # what the installer sets
    assert not {k for k in env if not k.startswith(("TEKSCORE_", "LC_"))} - {
        *PASSED, "HOME", "TMPDIR", "JOB_COMPLETION_INDEX", "PWD",
    }  # fmt: skip


def test_a_job_cannot_forge_another_jobs_callback(server, spied):
    assert spied["calls"] == {"victim": 403, "self": 202}  # its own token works for itself only
    victim = server.job(spied["victim"]["id"])
    assert victim["state"] == "RUNNING"
    assert victim["flows"]["serve"]["records_in"] < 999999
    server.http.post(f"{JOBS}/{victim['id']}/cancel")
    server.wait_for(victim["id"], {"CANCELLED"})


@pytest.mark.skipif(BWRAP is None, reason="bubblewrap is not installed (.ci/run installs it)")
def test_the_sandbox_stops_code_reading_the_state_database_or_files_outside_the_roots(
    server, spied, land
):
    assert spied["reads"] == {
        str(server.home / "state.db"): "FileNotFoundError",
        str(land / "outside" / "passwd"): "FileNotFoundError",
    }


def test_job_processes_listen_on_loopback_only(server, land):
    job = server.start_job(
        [
            write(
                land / "data" / "listen.yaml",
                pipeline("{type: http, config: {port: 8091}}", mode="streaming", name="listen"),
            )
        ]
    )
    job = server.wait_for(job["id"], {"RUNNING"})
    pids = {
        p.pid
        for proc in server.job_processes(job["id"])
        for p in [proc, *proc.children(recursive=True)]
    }
    deadline = time.monotonic() + 60
    while True:  # the flow binds its metrics port and its http source once started
        listening = [
            c.laddr.ip
            for c in psutil.net_connections("inet")
            if c.pid in pids and c.status == psutil.CONN_LISTEN and c.laddr
        ]
        if len(listening) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(listening) >= 2, listening
    assert set(listening) == {"127.0.0.1"}
    server.http.post(f"{JOBS}/{job['id']}/cancel")
    server.wait_for(job["id"], {"CANCELLED"})
    body = files(
        land / "data",
        **{
            "p.yaml": pipeline(
                "{type: http, config: {port: 8092, host: 0.0.0.0}}", mode="streaming"
            )
        },
    )
    [error] = refused(server, body)
    assert error["msg"] == (
        "listening on 0.0.0.0 is not allowed (loopback only): setting TEKSCORE_ALLOW_BIND"
    )


def test_without_the_sandbox_an_allowed_code_source_runs_as_the_servers_user(tmp_path: Path):
    """Why docs/security.md says so plainly: the rules hold what the IR names, but code the
    operator lets run can read whatever the server's user can, unless the sandbox holds it."""
    scheduler = Scheduler(
        tmp_path / "home", data_root=tmp_path, extra_env={"TEKSCORE_SANDBOX": "off"}
    )
    scheduler.start()
    try:
        write(tmp_path / "spy.py", SPY)
        record = json.dumps({"victim": "j-none", "read": [str(scheduler.home / "state.db")]})
        sink = f"{{type: file, config: {{path: {tmp_path}/out.jsonl}}}}"
        source = f"{{type: inline, config: {{records: [{record}]}}}}"
        text = pipeline(source, sink=sink, steps="[{type: python, uri: file://spy.py}]")
        job = scheduler.start_job([write(tmp_path / "p.yaml", text)])
        job = scheduler.wait_for(job["id"], {"SUCCEEDED", "FAILED"})
        assert job["state"] == "SUCCEEDED", job
        [line] = (tmp_path / "out.jsonl").read_text().splitlines()
        reads = json.loads(line)["reads"]
        assert reads[str(scheduler.home / "state.db")].startswith("read ")
        assert "TEKSCORE_API_TOKENS" not in json.loads(line)["env"]  # the environment still holds
    finally:
        scheduler.close()


@pytest.mark.skipif(BWRAP is None, reason="bubblewrap is not installed (.ci/run installs it)")
@pytest.mark.skipif(
    importlib.util.find_spec("jpmml_evaluator") is None,
    reason="the pmml extra is not installed (pip install 'tekscore[pmml]')",
)
def test_a_pmml_model_scores_inside_the_sandbox(server, land):
    """The pmml runtime's JVM needs its configuration under /etc (Debian's OpenJDK links
    `conf/` there): without it in the sandbox, the model failed to load."""
    folder = land / "data"
    (folder / "risk.pmml").write_text(RISK_PMML)
    model = """\
        apiVersion: tekscore.dev/v1
        kind: Model
        metadata: {name: risk}
        spec: {type: pmml, uri: file://risk.pmml}
        """
    records = "[{colour: red, size: 3}, {colour: blue, size: 12}]"
    scored = pipeline(
        f"{{type: inline, config: {{records: {records}}}}}",
        sink=f"{{type: file, config: {{path: {folder / 'risk.jsonl'}}}}}",
        steps="[{type: score, model: risk}]",
        name="pmml",
    )
    body = files(folder, **{"risk.yaml": model, "pmml.yaml": scored})
    response = server.http.post(JOBS, json=body)
    assert response.status_code == 201, response.text
    job = server.wait_for(response.json()["id"], {"SUCCEEDED", "FAILED"})
    assert job["state"] == "SUCCEEDED", job
    lines = (folder / "risk.jsonl").read_text().splitlines()
    assert [json.loads(line)["risk"] for line in lines] == [10.5, 24.5]
