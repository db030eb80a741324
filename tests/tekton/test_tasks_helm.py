"""The install and uninstall tasks: helm through pyhelm3 with a Command double (arguments, values,
failures as pyhelm3's own errors), `tekscore task install|uninstall` end to end against kmock
(callback Secret, result file, exit codes), and the real helm binary's `helm template` of the
chart with the values install passes."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

import tekton.tasks.helm as helm_tasks
from common.task_errors import TaskFailed
from ir.bundle import render_bundle
from tekton.tasks.helm import HelmInstaller, go_duration, make_client
from tests.conftest import ROOT
from tests.tekton import conftest_k8s
from tests.tekton.conftest_k8s import (
    JOB,
    NS,
    SECRETS,
    FakeCluster,
    RecordingHelm,
    invoke,
    iris_bundle,
)

# The kmock fake apiserver fixture, shared through conftest_k8s.py.
cluster = conftest_k8s.cluster

CHART = ROOT / "charts" / "scoring-pipeline"


def client_for(double: RecordingHelm) -> Any:
    # pyhelm3's Client checks that its executable exists even when given a Command.
    return make_client(executable=sys.executable, command=double)


def test_go_duration() -> None:
    assert go_duration("10m", name="t") == "10m"
    assert go_duration("1h30m", name="t") == "1h30m"
    with pytest.raises(TaskFailed, match="not a Go duration"):
        go_duration("10 minutes", name="t")


async def test_install_arguments_and_values(iris_dir: Path) -> None:
    double = RecordingHelm()
    values = render_bundle(iris_bundle(iris_dir)).values
    installer = HelmInstaller(client=client_for(double), job_id=JOB, release=JOB, namespace=NS)
    assert await installer.install(chart=CHART, values=values, helm_timeout="10m") == 1
    [(name, args, kwargs)] = double.calls
    assert name == "install_or_upgrade"
    assert args[:3] == (JOB, CHART, values)
    assert kwargs["namespace"] == NS and kwargs["timeout"] == "10m" and kwargs["wait"] is True
    assert kwargs["atomic"] is True and kwargs["atomic_arg"] == "--rollback-on-failure"
    assert kwargs["create_namespace"] is False
    upgrade = double.runs[-1]
    assert upgrade.argv[:3] == ["upgrade", JOB, str(CHART)]
    assert "--install" in upgrade.argv and "--rollback-on-failure" in upgrade.argv
    assert "--wait" in upgrade.argv and "--wait-for-jobs" not in upgrade.argv
    assert "--create-namespace" not in upgrade.argv
    assert upgrade.argv[upgrade.argv.index("--timeout") + 1] == "10m"
    assert upgrade.argv[upgrade.argv.index("--namespace") + 1] == NS
    assert upgrade.stdin == values  # values go on stdin, never on the command line


async def test_install_failure_is_install_failed(iris_dir: Path) -> None:
    double = RecordingHelm(
        fail_install="Error: UPGRADE FAILED: release j-0123abcd failed, and has been rolled back "
        "due to rollback-on-failure being set: context deadline exceeded\n"
    )
    installer = HelmInstaller(client=client_for(double), job_id=JOB, release=JOB, namespace=NS)
    with pytest.raises(TaskFailed) as info:
        await installer.install(chart=CHART, values={"job": {}}, helm_timeout="1m")
    assert info.value.reason == "InstallFailed"
    assert "rolled back" in info.value.message and "\n" not in info.value.message


async def test_uninstall_tolerates_a_missing_release() -> None:
    double = RecordingHelm(missing_release=True)
    installer = HelmInstaller(client=client_for(double), job_id=JOB, release=JOB, namespace=NS)
    await installer.uninstall(helm_timeout="5m")
    [(name, args, kwargs)] = double.calls
    assert (name, args, kwargs["namespace"], kwargs["wait"]) == ("uninstall", (JOB,), NS, True)
    assert double.runs[-1].argv[:2] == ["uninstall", JOB] and "--wait" in double.runs[-1].argv


async def test_template_with_real_helm_accepts_the_values(iris_dir: Path) -> None:
    """helm template through pyhelm3 (no cluster): the chart takes exactly what install passes."""
    helm = shutil.which("helm")
    if helm is None:
        pytest.skip("helm is not on PATH (make tools)")
    values = render_bundle(iris_bundle(iris_dir)).values
    client = make_client(executable=helm)
    chart = await client.get_chart(CHART)
    objects = [o for o in await client.template_resources(chart, JOB, values, namespace=NS) if o]
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert "Job" in {kind for kind, _ in kinds} and "Deployment" in {kind for kind, _ in kinds}
    assert all(
        o["metadata"]["labels"]["tekscore.dev/job"] == JOB for o in objects if o["kind"] != "Pod"
    )


# ---------------------------------------------------------------------------------- CLI


def env(cluster: FakeCluster, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "KUBECONFIG": str(cluster.kubeconfig(tmp_path / "kubeconfig")),
        "PARAM_JOB_ID": JOB,
        "PARAM_RELEASE": JOB,
        "PARAM_NAMESPACE": NS,
        "PARAM_SCHEDULER_URL": "http://127.0.0.1:9",  # never called when IR_DIR has job.json
        **extra,
    }


@pytest.fixture
def double(monkeypatch: pytest.MonkeyPatch) -> RecordingHelm:
    recording = RecordingHelm()
    monkeypatch.setattr(helm_tasks, "make_client", lambda **_: client_for(recording))
    return recording


def install_env(
    cluster: FakeCluster, tmp_path: Path, iris_dir: Path, **extra: str
) -> dict[str, str]:
    ir = tmp_path / "ir"
    ir.mkdir()
    (ir / "job.json").write_text(iris_bundle(iris_dir).model_dump_json())
    return env(
        cluster,
        tmp_path,
        PARAM_CHART=str(CHART),
        PARAM_TIMEOUT="10m",
        IR_DIR=str(ir),
        RESULT_RELEASE_PATH=str(tmp_path / "release"),
        **extra,
    )


async def test_cli_install_succeeds(
    cluster: FakeCluster, double: RecordingHelm, tmp_path: Path, iris_dir: Path
) -> None:
    cluster.add_secret(f"{JOB}-callback", {"token": "s3cr3t-token"})
    result = await invoke(["task", "install"], install_env(cluster, tmp_path, iris_dir))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "release").read_bytes() == JOB.encode()  # printf "%s": no newline
    assert double.runs[-1].stdin == render_bundle(iris_bundle(iris_dir)).values
    assert "s3cr3t-token" not in result.output
    assert "s3cr3t-token" not in json.dumps([r.stdin for r in double.runs])


async def test_cli_install_helm_failure(
    cluster: FakeCluster, double: RecordingHelm, tmp_path: Path, iris_dir: Path
) -> None:
    cluster.add_secret(f"{JOB}-callback", {"token": "t"})
    double.fail_install = 'Error: INSTALLATION FAILED: Deployment "x" is invalid: spec.replicas\n'
    result = await invoke(["task", "install"], install_env(cluster, tmp_path, iris_dir))
    assert result.exit_code == 1
    assert (
        result.stderr.strip().splitlines()[-1].startswith("InstallFailed: helm upgrade --install")
    )
    assert not (tmp_path / "release").exists()


async def test_cli_install_without_callback_secret(
    cluster: FakeCluster, double: RecordingHelm, tmp_path: Path, iris_dir: Path
) -> None:
    result = await invoke(["task", "install"], install_env(cluster, tmp_path, iris_dir))
    assert result.exit_code == 1
    assert f"InstallFailed: Secret {JOB}-callback" in result.stderr
    assert double.runs == []


async def test_cli_install_ir_changed(
    cluster: FakeCluster, double: RecordingHelm, tmp_path: Path, iris_dir: Path
) -> None:
    cluster.add_secret(f"{JOB}-callback", {"token": "t"})
    env_ = install_env(cluster, tmp_path, iris_dir)
    job_json = Path(env_["IR_DIR"]) / "job.json"
    bundle = json.loads(job_json.read_text())
    job_json.write_text(json.dumps(dict(bundle, content_hash="0" * 64)))
    result = await invoke(["task", "install"], env_)
    assert result.exit_code == 1 and "IRChanged: " in result.stderr
    assert double.runs == []


async def test_cli_uninstall_never_installed(
    cluster: FakeCluster, double: RecordingHelm, tmp_path: Path
) -> None:
    double.missing_release = True
    cluster.add_secret(f"{JOB}-callback", {"token": "t"})
    result = await invoke(
        ["task", "uninstall"],
        env(cluster, tmp_path, PARAM_WAIT_STATUS="Failed", PARAM_WAIT_REASON="TaskRunCancelled"),
    )
    assert result.exit_code == 0, result.output
    assert cluster.server.objects[SECRETS, NS, f"{JOB}-callback"].deleted
    finished = [json.loads(line) for line in result.stderr.splitlines() if '"job finished"' in line]
    assert finished and finished[0]["wait_status"] == "Failed"
    assert finished[0]["wait_reason"] == "TaskRunCancelled" and finished[0]["job_id"] == JOB


async def test_cli_uninstall_failure(
    cluster: FakeCluster, double: RecordingHelm, tmp_path: Path
) -> None:
    double.fail_uninstall = (
        "Error: uninstallation completed with 1 error(s): context deadline exceeded"
    )
    result = await invoke(
        ["task", "uninstall"], env(cluster, tmp_path, PARAM_WAIT_STATUS="Succeeded")
    )
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("UninstallFailed: helm uninstall")
