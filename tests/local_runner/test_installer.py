"""The local installer (local_runner/installer.py) with real processes: the iris scoring service and
flows started as `tekscore serve-model` / `tekscore flow run` children (batch file -> score -> file,
an http streaming flow, a model that cannot be downloaded, a failing flow, shards), and small
stand-in processes for what is hard to provoke with them: re-attaching after a scheduler restart,
flows that vanished while it was down, SIGTERM-deaf processes, orphaned group members and pids
reused by unrelated processes. Every test ends with no process of its job left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

import ir
from local_runner import FlowReport, LocalInstaller, TaskFailed
from local_runner.processes import ProcessRecord, ProcessTable, write_table
from tests.conftest import IRIS

READY = 90.0  # generous: a loaded 2-core machine imports scikit-learn slowly
DEADLINE = 120.0
SPECIES = {"setosa", "versicolor", "virginica"}


# ---------------------------------------------------------------- helpers


def render(paths: list[Path], job_id: str) -> dict[str, Any]:
    """The values tree of an IR, as the scheduler hands it to `install`."""
    return ir.preprocess(ir.load_paths(paths), job=ir.JobInfo(id=job_id)).values


def iris_ir(tmp_path: Path, trained: Path) -> Path:
    """A copy of examples/iris (IR files, trained model, records) in tmp."""
    folder = tmp_path / "ir"
    folder.mkdir()
    for name in ("model.yaml", "batch.yaml"):
        shutil.copy(IRIS / name, folder / name)
    for name in ("model.joblib", "input.jsonl"):
        shutil.copy(trained / name, folder / name)
    return folder


def installer(job_dir: Path, job_id: str, **kwargs: Any) -> LocalInstaller:
    return LocalInstaller(
        job_id=job_id,
        job_dir=job_dir,
        callback_url=None,
        callback_token=None,
        **kwargs,
    )


def table(job_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((job_dir / "processes.json").read_text())
    return data


def leftovers(job_dir: Path) -> list[str]:
    """Running processes of the job: a recorded pid or a member of a recorded process group."""
    path = job_dir / "processes.json"
    if not path.exists():
        return []
    pids = {p["pid"] for p in table(job_dir)["processes"]}
    found = []
    for proc in psutil.process_iter(["status", "cmdline"]):
        try:
            in_group = os.getpgid(proc.pid) in pids
        except ProcessLookupError:
            continue
        if (proc.pid in pids or in_group) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(f"{proc.pid}: {' '.join(proc.info['cmdline'] or [])}")
    return found


async def cleanup(job_dir: Path, job_id: str, *installers: LocalInstaller) -> None:
    """Uninstall from a fresh instance (processes.json alone), then from the originals (which
    also reaps their children): uninstall is idempotent."""
    await installer(job_dir, job_id, grace_period=5.0).uninstall()
    for inst in installers:
        await inst.uninstall()
    assert leftovers(job_dir) == []


# ---------------------------------------------------------------- real iris processes


async def test_iris_batch_file_to_file_then_restart(tmp_path: Path, trained_iris: Path) -> None:
    folder = iris_ir(tmp_path, trained_iris)
    values = render([folder / "model.yaml", folder / "batch.yaml"], "j-batch")
    job_dir = tmp_path / "job"
    inst = installer(job_dir, "j-batch", ready_timeout=READY, grace_period=5.0)
    try:
        await asyncio.wait_for(inst.install(values), DEADLINE)
        await asyncio.wait_for(inst.wait(), DEADLINE)

        lines = (folder / "output" / "scored.jsonl").read_text().splitlines()
        scored = [json.loads(line) for line in lines]
        assert len(scored) == 150
        assert [r["id"] for r in scored] == list(range(150))
        assert all(r["species"] in SPECIES for r in scored)

        recorded = table(job_dir)
        assert recorded["installed"] is True
        assert recorded["jobId"] == "j-batch"
        kinds = [(p["kind"], p["name"], p["shard"]) for p in recorded["processes"]]
        assert kinds == [("service", "iris", None), ("flow", "classify", None)]
        service = recorded["processes"][0]
        assert service["createTime"] > 0
        assert service["command"][1:3] == ["serve-model", "--config"]
        url = f"http://127.0.0.1:{service['port']}"
        assert json.loads((job_dir / "services" / "iris.json").read_text())["url"] == url
        flow_config = json.loads((job_dir / "flows" / "classify.json").read_text())
        assert flow_config["services"]["iris"]["url"] == url
        assert inst.log_path("flow", "classify") == job_dir / "flows" / "classify.log"
        assert '"flow completed"' in inst.log_path("flow", "classify").read_text()
        assert inst.log_path("service", "iris").stat().st_size > 0
        said = json.loads((job_dir / "flows" / "classify.termination.json").read_text())
        assert said == {
            "reason": "Completed",
            "message": "The flow completed.",
            "records_in": 150,
            "records_out": 150,
            "records_failed": 0,
            "records_filtered": 0,
            "shard": 0,
            "shards": 1,
            "replica": 0,  # who it is among the flow's processes (the launcher's index)
        }
        # created empty at start (the sandbox shows it writable); the service wrote nothing
        assert (job_dir / "services" / "iris.termination.json").read_bytes() == b""
        counts = {k: v for k, v in said.items() if k not in ("reason", "message")}
        assert inst.completed_flows() == [("classify", counts)]

        # A scheduler restart after the flow finished: the service still runs, the batch flow
        # process is gone but its termination record says it completed.
        again = LocalInstaller.reattach(
            job_id="j-batch", job_dir=job_dir, callback_url=None, callback_token=None
        )
        assert again is not None
        await asyncio.wait_for(again.wait(), DEADLINE)
    finally:
        await cleanup(job_dir, "j-batch", inst)


STREAMING = """\
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {name: iris-http}
spec:
  models: [iris]
  dataChannels:
    - {name: on-demand, direction: source, type: http, config: {port: 8090}}
    - {name: nowhere, direction: sink, type: discard}
  scoringFlows:
    - name: classify-http
      mode: streaming
      source: on-demand
      sink: nowhere
      replicas: 3          # an http source still gets one process
      steps:
        - {type: score, model: iris, outputs: {prediction: species}}
"""


async def test_streaming_reattach_cancel_and_crash(tmp_path: Path, trained_iris: Path) -> None:
    folder = iris_ir(tmp_path, trained_iris)
    (folder / "http.yaml").write_text(STREAMING)
    values = render([folder / "model.yaml", folder / "http.yaml"], "j-http")
    job_dir = tmp_path / "job"
    inst = installer(job_dir, "j-http", ready_timeout=READY, grace_period=5.0)
    again: LocalInstaller | None = None
    try:
        await asyncio.wait_for(inst.install(values), DEADLINE)
        flows = [p for p in table(job_dir)["processes"] if p["kind"] == "flow"]
        assert len(flows) == 1
        http_port = flows[0]["httpPort"]
        assert http_port not in (None, 8090)
        config = json.loads((job_dir / "flows" / "classify-http.json").read_text())
        assert config["source"]["config"]["port"] == http_port

        record = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
        answer = await post_until_served(f"http://127.0.0.1:{http_port}/score", record)
        assert answer == {**record, "species": "setosa"}

        # Restart: a new installer from the same folder finds every process alive.
        again = LocalInstaller.reattach(
            job_id="j-http", job_dir=job_dir, callback_url=None, callback_token=None
        )
        assert again is not None
        waiting = asyncio.create_task(again.wait())
        await asyncio.sleep(1.0)
        assert not waiting.done()  # no batch flow: waits until cancelled
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 10)
        assert all(psutil.pid_exists(p["pid"]) for p in table(job_dir)["processes"])

        # The streaming flow dies: wait fails with FlowFailed, a restart cannot re-attach.
        first = asyncio.create_task(inst.wait())
        os.kill(flows[0]["pid"], signal.SIGKILL)
        with pytest.raises(TaskFailed) as failed:
            await asyncio.wait_for(first, DEADLINE)
        assert failed.value.reason == "FlowFailed"
        assert "classify-http" in failed.value.message
        assert "-9" in failed.value.message
        assert (
            LocalInstaller.reattach(
                job_id="j-http", job_dir=job_dir, callback_url=None, callback_token=None
            )
            is None
        )
    finally:
        await cleanup(job_dir, "j-http", inst, *([again] if again else []))


async def post_until_served(url: str, record: dict[str, Any]) -> Any:
    """POST one record to an http flow, retrying while it does not listen yet (bounded)."""
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        for _ in range(300):
            try:
                answer = await client.post(url, json=record)
            except httpx.ConnectError:
                await asyncio.sleep(0.2)
                continue
            assert answer.status_code == 200, answer.text
            return answer.json()
    raise AssertionError(f"{url} never answered")


BAD_MODEL = """\
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {name: bad-model}
spec:
  models:
    - {name: lost, type: sklearn, uri: "file://missing.joblib"}
  dataChannels:
    - {name: recs, direction: source, type: inline, config: {records: [{a: 1}]}}
    - {name: out, direction: sink, type: discard}
  scoringFlows:
    - {name: score, mode: batch, source: recs, sink: out, steps: [{type: score, model: lost}]}
"""


async def test_bad_model_uri_fails_install_with_the_download_error(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD_MODEL)
    values = render([tmp_path / "bad.yaml"], "j-bad")
    job_dir = tmp_path / "job"
    inst = installer(job_dir, "j-bad", ready_timeout=READY, grace_period=5.0)
    try:
        with pytest.raises(TaskFailed) as failed:
            await asyncio.wait_for(inst.install(values), DEADLINE)
        assert failed.value.reason == "ModelLoadFailed"
        assert f"file://{tmp_path}/missing.joblib: no such file" in failed.value.message
        # the service log's tail comes apart from the message, without the server's folders
        assert failed.value.part == ("service", "lost")
        assert "Last lines" not in failed.value.message and "\n" not in failed.value.message
        assert failed.value.log_tail and "missing.joblib" in failed.value.log_tail
        assert str(job_dir) not in failed.value.log_tail
        said = json.loads((job_dir / "services" / "lost.termination.json").read_text())
        assert said["reason"] == "ModelLoadFailed" and said["models"] == ["lost"]
        assert f"file://{tmp_path}/missing.joblib: no such file" in said["message"]
        recorded = table(job_dir)
        assert recorded["installed"] is False
        # flows start with the services and wait for them; uninstall (below) stops them all
        assert [p["kind"] for p in recorded["processes"]] == ["service", "flow"]
        assert (
            LocalInstaller.reattach(
                job_id="j-bad", job_dir=job_dir, callback_url=None, callback_token=None
            )
            is None
        )
    finally:
        await cleanup(job_dir, "j-bad", inst)


async def test_service_not_ready_in_time(tmp_path: Path, trained_iris: Path) -> None:
    folder = iris_ir(tmp_path, trained_iris)
    values = render([folder / "model.yaml", folder / "batch.yaml"], "j-slow")
    job_dir = tmp_path / "job"
    inst = installer(job_dir, "j-slow", ready_timeout=0.2, grace_period=5.0)
    try:
        with pytest.raises(TaskFailed) as failed:
            await asyncio.wait_for(inst.install(values), DEADLINE)
        assert failed.value.reason == "ServiceNotReady"
        assert "'iris' was not ready within 0.2 s" in failed.value.message
    finally:
        await cleanup(job_dir, "j-slow", inst)


FLOWS = """\
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {name: plain}
spec:
  dataChannels:
    - {name: recs, direction: source, type: inline, config: {records: [{a: 1}, {a: 2}, {a: 3}]}}
    - {name: missing, direction: source, type: file, config: {path: nowhere.jsonl}}
    - {name: out, direction: sink, type: discard}
  scoringFlows: [FLOW]
"""
SHARDED = "{name: sharded, mode: batch, source: recs, sink: out, shards: 2, steps: [{type: map, set: {b: 1}}]}"
BROKEN = (
    "{name: broken, mode: batch, source: missing, sink: out, steps: [{type: map, set: {b: 1}}]}"
)


async def test_sharded_batch_flow(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(FLOWS.replace("FLOW", SHARDED))
    job_dir = tmp_path / "job"
    inst = installer(job_dir, "j-shards", grace_period=5.0)
    try:
        await asyncio.wait_for(inst.install(render([tmp_path / "p.yaml"], "j-shards")), DEADLINE)
        await asyncio.wait_for(inst.wait(), DEADLINE)
        shards = [(p["name"], p["shard"]) for p in table(job_dir)["processes"]]
        assert shards == [("sharded", 0), ("sharded", 1)]
        assert inst.log_paths("flow", "sharded") == [
            job_dir / "flows" / "sharded-0.log",
            job_dir / "flows" / "sharded-1.log",
        ]
        for index in (0, 1):
            lines = inst.log_path("flow", f"sharded-{index}").read_text().splitlines()
            events = [json.loads(line) for line in lines]
            progress = [e for e in events if e["event"] == "flow progress"]
            assert progress[-1]["shard"] == index
            assert all(e["job_id"] == "j-shards" for e in events if "job_id" in e)
    finally:
        await cleanup(job_dir, "j-shards", inst)


async def test_failing_flow_fails_wait_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(FLOWS.replace("FLOW", BROKEN))
    job_dir = tmp_path / "job"
    inst = installer(job_dir, "j-broken", grace_period=5.0)
    try:
        await asyncio.wait_for(inst.install(render([tmp_path / "p.yaml"], "j-broken")), DEADLINE)
        with pytest.raises(TaskFailed) as failed:
            await asyncio.wait_for(inst.wait(), DEADLINE)
        assert failed.value.reason == "FlowFailed"
        assert "'broken' failed (exit code 1)" in failed.value.message
        assert f"{tmp_path}/nowhere.jsonl does not exist" in failed.value.message
        said = json.loads((job_dir / "flows" / "broken.termination.json").read_text())
        assert said["reason"] == "FlowFailed" and said["records_in"] == 0
    finally:
        await cleanup(job_dir, "j-broken", inst)


# ---------------------------------------------------------------- stand-in processes

SLEEP = "import time; time.sleep(120)"
DEAF = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
# A leader that starts a SIGTERM-deaf member in its own group, prints the member's pid, and then
# either sleeps (deaf itself) or exits, leaving the member orphaned in the group.
FORKS = textwrap.dedent(
    """\
    import signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    member = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
    print(member.pid, flush=True)
    if sys.argv[2] == "stay":
        time.sleep(120)
    """
)


class StandIns:
    """Spawns stand-in processes (each in its own session, like the installer's) and reaps and
    kills whatever is left at the end of a test."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self.popens: list[subprocess.Popen[bytes]] = []
        self.extra: list[int] = []
        job_dir.mkdir(parents=True, exist_ok=True)

    def spawn(self, *args: str, stdout: int | None = None) -> subprocess.Popen[bytes]:
        popen = subprocess.Popen(
            [sys.executable, "-c", *args], start_new_session=True, stdout=stdout
        )
        self.popens.append(popen)
        return popen

    def record(
        self,
        popen: subprocess.Popen[bytes],
        *,
        kind: str = "service",
        name: str = "svc",
        create_time: float | None = None,
    ) -> ProcessRecord:
        started = psutil.Process(popen.pid).create_time()
        log = self.job_dir / f"{name}-{popen.pid}.log"
        log.touch()
        return ProcessRecord.from_json(
            {
                "kind": kind,
                "name": name,
                "shard": None,
                "pid": popen.pid,
                "createTime": started if create_time is None else create_time,
                "port": None,
                "command": ["stand-in"],
                "log": str(log),
            }
        )

    def write(self, records: list[ProcessRecord], modes: dict[str, str]) -> None:
        write_table(
            self.job_dir / "processes.json",
            ProcessTable(job_id="j-x", processes=records, modes=modes, installed=True),
        )

    def close(self) -> None:
        for pid in self.extra:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
        for popen in self.popens:
            if popen.poll() is None:
                popen.kill()
            popen.wait(timeout=10)


@pytest.fixture
def stand_ins(tmp_path: Path) -> Iterator[StandIns]:
    helper = StandIns(tmp_path / "job")
    yield helper
    helper.close()


def reattach(job_dir: Path) -> LocalInstaller | None:
    return LocalInstaller.reattach(
        job_id="j-x", job_dir=job_dir, callback_url=None, callback_token=None, grace_period=0.5
    )


async def test_uninstall_with_nothing_installed(tmp_path: Path) -> None:
    inst = installer(tmp_path / "never", "j-none")
    await inst.uninstall()
    await inst.uninstall()
    assert reattach(tmp_path / "never") is None


async def test_uninstall_kills_deaf_processes_and_orphaned_group_members(
    stand_ins: StandIns,
) -> None:
    deaf = stand_ins.spawn(DEAF)
    stays = stand_ins.spawn(FORKS, DEAF, "stay", stdout=subprocess.PIPE)
    leaves = stand_ins.spawn(FORKS, DEAF, "leave", stdout=subprocess.PIPE)
    members = []
    for popen in (stays, leaves):
        assert popen.stdout is not None
        members.append(int(popen.stdout.readline()))
        popen.stdout.close()
    stand_ins.extra += members
    records = [
        stand_ins.record(deaf, kind="flow", name="f"),
        stand_ins.record(stays),
        stand_ins.record(leaves, name="svc2"),
    ]
    stand_ins.write(records, {"f": "streaming"})
    leaves.wait(timeout=30)  # its leader is gone (reaped): only the orphan member is left
    assert psutil.pid_exists(members[1])

    # A fresh installer (as after a restart) stops everything from processes.json alone.
    inst = installer(stand_ins.job_dir, "j-x", grace_period=0.5)
    await asyncio.wait_for(inst.uninstall(), 30)
    for popen in (deaf, stays):
        assert popen.wait(timeout=10) == -signal.SIGKILL
    assert leftovers(stand_ins.job_dir) == []
    await inst.uninstall()  # idempotent


async def test_a_reused_pid_is_never_signalled(stand_ins: StandIns) -> None:
    # A live process whose pid matches a record but whose start time does not: another
    # process reused the pid. It leads its own session, so a signal to the group would hit it.
    bystander = stand_ins.spawn(SLEEP)
    started = psutil.Process(bystander.pid).create_time()
    stand_ins.write([stand_ins.record(bystander, create_time=started - 1000.0)], {})
    assert reattach(stand_ins.job_dir) is None  # treated as dead
    await installer(stand_ins.job_dir, "j-x", grace_period=0.5).uninstall()
    await asyncio.sleep(0.3)
    assert bystander.poll() is None


@pytest.mark.parametrize(
    ("report", "said", "outcome"),
    [
        (FlowReport(completed=True), None, None),
        (FlowReport(completed=True, error="sink exploded"), None, "sink exploded"),
        (None, {"reason": "Completed", "message": "", "records_in": 3}, None),
        (None, {"reason": "FlowFailed", "message": "bad record"}, "bad record"),
        (None, None, "ended while the scheduler was down, without reporting"),
    ],
)
async def test_reattached_batch_flow_that_ended_meanwhile(
    stand_ins: StandIns, report: FlowReport | None, said: dict[str, Any] | None, outcome: str | None
) -> None:
    service = stand_ins.spawn(SLEEP)
    flow = stand_ins.spawn("pass")
    records = [stand_ins.record(service), stand_ins.record(flow, kind="flow", name="b")]
    flow.wait(timeout=30)
    # what the flow process logged is for people: the supervisor reads its termination record
    Path(records[1].log).write_text('{"event": "flow completed", "records_in": 3}\n')
    if said is not None:
        Path(records[1].log).with_suffix(".termination.json").write_text(json.dumps(said))
    stand_ins.write(records, {"b": "batch"})

    inst = reattach(stand_ins.job_dir)
    assert inst is not None
    inst.report_grace = 0.5
    asked: list[str] = []

    def reports(name: str) -> FlowReport | None:
        asked.append(name)
        return report

    if outcome is None:
        await asyncio.wait_for(inst.wait(reports), 30)
    else:
        with pytest.raises(TaskFailed) as failed:
            await asyncio.wait_for(inst.wait(reports), 30)
        assert failed.value.reason == "FlowFailed"
        assert outcome in failed.value.message
        assert "'b'" in failed.value.message
    assert asked and set(asked) == {"b"}
    await inst.uninstall()
    assert service.wait(timeout=10) == -signal.SIGTERM


async def test_reported_flow_error_fails_wait_while_the_process_runs(stand_ins: StandIns) -> None:
    flow = stand_ins.spawn(SLEEP)
    stand_ins.write([stand_ins.record(flow, kind="flow", name="b")], {"b": "batch"})
    inst = reattach(stand_ins.job_dir)
    assert inst is not None
    with pytest.raises(TaskFailed) as failed:
        await asyncio.wait_for(inst.wait(lambda name: FlowReport(True, "boom")), 30)
    assert (failed.value.reason, failed.value.message) == ("FlowFailed", "Flow 'b' failed: boom")
    assert flow.poll() is None
    await inst.uninstall()


async def test_a_dead_service_fails_wait(stand_ins: StandIns) -> None:
    service = stand_ins.spawn(SLEEP)
    flow = stand_ins.spawn(SLEEP)
    records = [stand_ins.record(service), stand_ins.record(flow, kind="flow", name="s")]
    Path(records[0].log).write_text("model server crashed: out of memory\n")
    stand_ins.write(records, {"s": "streaming"})
    inst = reattach(stand_ins.job_dir)
    assert inst is not None
    waiting = asyncio.create_task(inst.wait())
    service.kill()
    service.wait(timeout=10)
    with pytest.raises(TaskFailed) as failed:
        await asyncio.wait_for(waiting, 30)
    assert failed.value.reason == "ServiceFailed"
    assert "no termination record" in failed.value.message  # it left no word: its log says
    assert failed.value.part == ("service", records[0].name)
    assert failed.value.log_tail == "model server crashed: out of memory"
    await inst.uninstall()
    assert flow.wait(timeout=10) == -signal.SIGTERM
