"""The wait task: its pure decisions on realistic pods and Jobs, the list+watch loop against the
kmock fake apiserver (completion, CrashLoopBackOff, image pulls, a failed Job, a streaming-only
release that keeps waiting, transient 500s, 410 Gone), and `tekscore task wait` end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from common.task_errors import TaskFailed
from tekton.tasks.kube import (
    Completed,
    ReleaseWatcher,
    all_batch_complete,
    classify_job,
    classify_pod,
    decide,
    tail_of,
)
from tests.tekton import conftest_k8s
from tests.tekton.conftest_k8s import (
    JOB,
    JOBS,
    NS,
    PODS,
    FakeCluster,
    complete,
    container_status,
    invoke,
    job_object,
    pod,
)

# The kmock fake apiserver fixture, shared through conftest_k8s.py.
cluster = conftest_k8s.cluster

JOBS_PATH = f"/apis/batch/v1/namespaces/{NS}/jobs"
PODS_PATH = f"/api/v1/namespaces/{NS}/pods"
CRASH_TERMINATION = {
    "exitCode": 1,
    "reason": "Error",
    "message": "flow failed: cannot read s3://bucket/in.jsonl: NoSuchKey",
    "finishedAt": "2026-01-01T10:01:00Z",
}


def service_pod(name: str = f"{JOB}-iris-svc-7c9d-x2k4p", **status: object) -> dict[str, object]:
    return pod(
        name,
        component="scoring-service",
        service="iris-svc",
        statuses=[container_status("scoring-service", **status)],  # type: ignore[arg-type]
    )


def flow_pod(
    name: str, *, flow: str = "classify", phase: str = "Running", **status: object
) -> dict[str, object]:
    return pod(
        name,
        component="scoring-flow",
        flow=flow,
        phase=phase,
        statuses=[container_status("scoring-flow", **status)],  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------------- pure


def test_healthy_pods_are_no_failure() -> None:
    assert classify_pod(service_pod(ready=True)) is None
    assert classify_pod(flow_pod("f-1", waiting=("ContainerCreating", ""))) is None
    done = {"exitCode": 0, "reason": "Completed", "finishedAt": "2026-01-01T10:02:00Z"}
    assert classify_pod(flow_pod("f-2", terminated=done)) is None


def test_crash_loop_names_pod_container_and_last_termination() -> None:
    failure = classify_pod(
        flow_pod(
            "j-0123abcd-flow-stream-5f6-abcde",
            flow="stream",
            waiting=("CrashLoopBackOff", "back-off 40s restarting failed container"),
            last_terminated=CRASH_TERMINATION,
            restarts=3,
        )
    )
    assert failure is not None
    assert failure.reason == "FlowFailed"
    assert failure.part == ("flow", "stream")  # the part that failed, for the flow's state
    assert failure.error().part == ("flow", "stream")
    assert "'stream'" in failure.message
    assert "pod j-0123abcd-flow-stream-5f6-abcde" in failure.message
    assert "container scoring-flow" in failure.message
    assert "CrashLoopBackOff" in failure.message
    assert "exit code 1 (Error): flow failed: cannot read s3://bucket/in.jsonl" in failure.message


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull", "InvalidImageName"])
def test_image_pull_failures(reason: str) -> None:
    failure = classify_pod(
        service_pod(waiting=(reason, 'Back-off pulling image "ghcr.io/tekscore/tekscore:0.1.0"'))
    )
    assert failure is not None and failure.reason == "ServiceFailed"
    assert "cannot pull image ghcr.io/tekscore/tekscore:0.1.0" in failure.message
    assert reason in failure.message


def test_container_config_error() -> None:
    failure = classify_pod(
        flow_pod(
            "f-1",
            waiting=("CreateContainerConfigError", 'secret "s3-creds" not found'),
        )
    )
    assert failure is not None and failure.reason == "FlowFailed"
    assert 'CreateContainerConfigError: secret "s3-creds" not found' in failure.message


def test_service_terminating_with_errors_several_times() -> None:
    oom = {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-01-01T10:03:00Z"}
    assert classify_pod(service_pod(last_terminated=oom, restarts=2)) is None
    failure = classify_pod(service_pod(last_terminated=oom, restarts=3))
    assert failure is not None and failure.reason == "ServiceFailed"
    assert failure.part == ("service", "iris-svc")
    assert "Scoring service 'iris-svc'" in failure.message
    assert "3 times" in failure.message and "exit code 137 (OOMKilled)" in failure.message


def test_test_pods_and_terminating_pods_are_ignored() -> None:
    test_pod = pod(
        "t", component="test", statuses=[container_status("t", waiting=("ErrImagePull", ""))]
    )
    assert classify_pod(test_pod) is None
    going = service_pod(waiting=("CrashLoopBackOff", ""))
    going["metadata"]["deletionTimestamp"] = "2026-01-01T10:00:00Z"  # type: ignore[index]
    assert classify_pod(going) is None


def test_failed_job_with_reason_message_and_last_failed_pod() -> None:
    job = job_object(
        f"{JOB}-flow-classify",
        flow="classify",
        conditions=[
            {
                "type": "FailureTarget",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            },
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            },
        ],
    )
    first = dict(CRASH_TERMINATION, finishedAt="2026-01-01T10:00:30Z", message="older")
    pods = [
        flow_pod("a-1", terminated=first, phase="Failed"),
        flow_pod("a-2", terminated=CRASH_TERMINATION, phase="Failed"),
        flow_pod(
            "other",
            flow="other",
            terminated=dict(CRASH_TERMINATION, finishedAt="2026-01-02T00:00:00Z"),
        ),
    ]
    failure = classify_job(job, pods)
    assert failure is not None and failure.reason == "FlowFailed"
    assert failure.message.startswith(
        f"Flow 'classify': Job {JOB}-flow-classify failed: BackoffLimitExceeded: "
        "Job has reached the specified backoff limit; last failed pod a-2: exit code 1 (Error): flow failed"
    )
    assert classify_job(job_object("j", flow="x")) is None


def test_all_batch_complete() -> None:
    assert not all_batch_complete([])
    done = job_object("a", flow="a", conditions=complete())
    running = job_object("b", flow="b")
    assert all_batch_complete([done])
    assert not all_batch_complete([done, running])
    assert decide(pods=[], jobs=[done]) == Completed(("a",))
    assert decide(pods=[], jobs=[done, running]) is None


def test_decide_prefers_failure_over_completion() -> None:
    done = job_object("a", flow="a", conditions=complete())
    crashing = flow_pod("s-1", flow="stream", waiting=("CrashLoopBackOff", ""), restarts=1)
    decision = decide(pods=[crashing], jobs=[done])
    assert decision is not None and not isinstance(decision, Completed)


# ---------------------------------------------------------------------------------- kmock


def watcher(cluster: FakeCluster, **kwargs: object) -> ReleaseWatcher:
    return ReleaseWatcher(kube=cluster.kube, namespace=NS, job_id=JOB, backoff=0.01, **kwargs)  # type: ignore[arg-type]


async def test_exits_when_every_batch_job_completed(cluster: FakeCluster) -> None:
    cluster.add(JOBS, job_object(f"{JOB}-flow-a", flow="a", conditions=complete()))
    cluster.add(JOBS, job_object(f"{JOB}-flow-b", flow="b"))
    cluster.add(PODS, service_pod(ready=True))
    # Another job's failing pod in the same namespace: kmock ignores labelSelector, we must not.
    cluster.add(
        PODS,
        pod(
            "foreign",
            component="scoring-flow",
            flow="x",
            job="j-other",
            statuses=[container_status("scoring-flow", waiting=("CrashLoopBackOff", ""))],
        ),
    )
    task = asyncio.create_task(watcher(cluster).wait())
    await asyncio.sleep(0.5)
    assert not task.done()
    await cluster.patch(f"{JOBS_PATH}/{JOB}-flow-b", {"status": {"conditions": complete()}})
    done = await asyncio.wait_for(task, 10)
    assert done.jobs == (f"{JOB}-flow-a", f"{JOB}-flow-b")


async def test_crash_loop_fails_the_wait(cluster: FakeCluster) -> None:
    cluster.add(JOBS, job_object(f"{JOB}-flow-a", flow="a"))
    name = f"{JOB}-flow-stream-5f6-abcde"
    cluster.add(PODS, flow_pod(name, flow="stream", ready=True))
    task = asyncio.create_task(watcher(cluster).wait())
    await asyncio.sleep(0.3)
    crashed = container_status(
        "scoring-flow",
        waiting=("CrashLoopBackOff", "back-off 10s"),
        last_terminated=CRASH_TERMINATION,
        restarts=1,
    )
    await cluster.patch(f"{PODS_PATH}/{name}", {"status": {"containerStatuses": [crashed]}})
    with pytest.raises(TaskFailed) as info:
        await asyncio.wait_for(task, 10)
    assert info.value.reason == "FlowFailed"
    assert f"pod {name}" in info.value.message and "container scoring-flow" in info.value.message


async def test_image_pull_backoff_fails_the_wait(cluster: FakeCluster) -> None:
    task = asyncio.create_task(watcher(cluster).wait())
    await asyncio.sleep(0.3)
    await cluster.create(
        PODS_PATH, service_pod(waiting=("ImagePullBackOff", "Back-off pulling image"))
    )
    with pytest.raises(TaskFailed) as info:
        await asyncio.wait_for(task, 10)
    assert info.value.reason == "ServiceFailed" and "ImagePullBackOff" in info.value.message


async def test_failed_job_fails_the_wait(cluster: FakeCluster) -> None:
    cluster.add(JOBS, job_object(f"{JOB}-flow-a", flow="a"))
    task = asyncio.create_task(watcher(cluster).wait())
    await asyncio.sleep(0.3)
    failed = [
        {
            "type": "Failed",
            "status": "True",
            "reason": "DeadlineExceeded",
            "message": "Job was active longer than specified deadline",
        }
    ]
    await cluster.patch(f"{JOBS_PATH}/{JOB}-flow-a", {"status": {"conditions": failed}})
    with pytest.raises(TaskFailed) as info:
        await asyncio.wait_for(task, 10)
    assert info.value.reason == "FlowFailed"
    assert "DeadlineExceeded: Job was active longer than specified deadline" in info.value.message


async def test_streaming_only_release_keeps_waiting(cluster: FakeCluster) -> None:
    cluster.add(PODS, service_pod(ready=True))
    cluster.add(PODS, flow_pod(f"{JOB}-flow-stream-1", flow="stream", ready=True))
    task = asyncio.create_task(watcher(cluster).wait())
    done, _ = await asyncio.wait([task], timeout=1.5)
    assert not done
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_transient_500s_are_retried(cluster: FakeCluster) -> None:
    (
        cluster.server["list", PODS][:2]
        << 500
        << {"kind": "Status", "code": 500, "message": "etcd timeout"}
    )
    (
        cluster.server["list", JOBS][:1]
        << 503
        << {"kind": "Status", "code": 503, "message": "unavailable"}
    )
    cluster.add(JOBS, job_object(f"{JOB}-flow-a", flow="a", conditions=complete()))
    w = watcher(cluster)
    assert (await asyncio.wait_for(w.wait(), 10)).jobs == (f"{JOB}-flow-a",)
    assert len(cluster.server["list", JOBS]) >= 2


async def test_pod_500s_do_not_hide_a_later_failure(cluster: FakeCluster) -> None:
    (
        cluster.server["list", PODS][:2]
        << 500
        << {"kind": "Status", "code": 500, "message": "etcd timeout"}
    )
    cluster.add(PODS, service_pod(waiting=("ErrImagePull", "not found")))
    with pytest.raises(TaskFailed, match="ErrImagePull"):
        await asyncio.wait_for(watcher(cluster).wait(), 10)
    assert len(cluster.server["list", PODS]) == 3


async def test_persistent_errors_give_up(cluster: FakeCluster) -> None:
    cluster.server["list", PODS] << 500 << {"kind": "Status", "code": 500, "message": "down"}
    with pytest.raises(TaskFailed) as info:
        await asyncio.wait_for(watcher(cluster, attempts=3).wait(), 10)
    assert info.value.reason == "KubernetesUnavailable"


async def test_watch_expired_410_relists(cluster: FakeCluster) -> None:
    gone = {
        "type": "ERROR",
        "object": {
            "kind": "Status",
            "code": 410,
            "reason": "Expired",
            "message": "too old resource version: 1000 (2000)",
        },
    }
    cluster.server["watch", JOBS][:1] << (gone,)
    cluster.add(JOBS, job_object(f"{JOB}-flow-a", flow="a"))
    w = watcher(cluster)
    task = asyncio.create_task(w.wait())
    for _ in range(50):
        if w.listed["jobs"] >= 2:
            break
        await asyncio.sleep(0.1)
    assert w.listed["jobs"] >= 2
    await cluster.patch(f"{JOBS_PATH}/{JOB}-flow-a", {"status": {"conditions": complete()}})
    assert (await asyncio.wait_for(task, 10)).jobs == (f"{JOB}-flow-a",)


# ---------------------------------------------------------------------------------- CLI


def env(cluster: FakeCluster, tmp_path: Path) -> dict[str, str]:
    return {
        "KUBECONFIG": str(cluster.kubeconfig(tmp_path / "kubeconfig")),
        "PARAM_JOB_ID": JOB,
        "PARAM_RELEASE": JOB,
        "PARAM_NAMESPACE": NS,
        "PARAM_SCHEDULER_URL": "http://tekscore.tekscore.svc:8000",
    }


async def test_cli_wait_succeeds(cluster: FakeCluster, tmp_path: Path) -> None:
    cluster.add(JOBS, job_object(f"{JOB}-flow-a", flow="a", conditions=complete()))
    result = await invoke(["task", "wait"], env(cluster, tmp_path))
    assert result.exit_code == 0, result.output
    assert '"event": "task succeeded"' in result.stderr


async def test_cli_wait_fails_with_reason(cluster: FakeCluster, tmp_path: Path) -> None:
    cluster.add(JOBS, job_object(f"{JOB}-flow-a", flow="a"))
    cluster.add(
        PODS, flow_pod("p-1", waiting=("CreateContainerConfigError", 'secret "x" not found'))
    )
    result = await invoke(["task", "wait"], env(cluster, tmp_path))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("FlowFailed: Flow 'classify': container scoring-flow of pod p-1")
    assert any('"event": "task failed"' in line and JOB in line for line in lines)


def test_a_log_tail_keeps_the_last_whole_lines_without_server_paths() -> None:
    log = "".join(f"step {i} in /srv/tekscore/jobs/j-1/models/m.joblib\n" for i in range(100))
    tail = tail_of(log, limit=200)
    assert tail is not None and tail.endswith("step 99 in m.joblib")
    assert len(tail.encode()) <= 200 and tail.startswith("step ")
    assert "/srv" not in tail
    assert tail_of("") is None


def test_failures_name_the_container_whose_log_tells_more() -> None:
    crashed = container_status(
        "scoring-flow",
        waiting=("CrashLoopBackOff", "back-off 10s"),
        last_terminated=CRASH_TERMINATION,
        restarts=1,
    )
    name = f"{JOB}-flow-stream-5f6-abcde"
    stream = pod(name, component="scoring-flow", flow="stream", statuses=[crashed])
    found = classify_pod(stream)
    assert found is not None
    assert (found.pod, found.container, found.previous) == (name, "scoring-flow", True)
