"""The rules of a job's flow and service status (`scheduler.flowstatus`), through the job service
in-process over a real SQLite store: each replica or shard reports as itself and the flow row is
the sum of their rows (every counter invariant holds on the sum, a late progress report never
undoes a completion); once the job has finished no flow reads RUNNING (COMPLETED, FAILED,
CANCELLED or NOT_STARTED, by what happened); endpoints show only while the job runs; a failure
names its part and keeps the log tail apart from the message. The Kubernetes names of the
endpoints match the chart's."""

from __future__ import annotations

import pytest

from scheduler.jobs import JobService
from scheduler.schemas import FlowReport, JobCreate, JobRecord
from scheduler.states import Event, State
from tekton import pipelinerun as pr
from tests.scheduler.test_jobs import PIPELINE, done, service  # noqa: F401 (fixture)

STREAMING = """\
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {name: streams}
spec:
  dataChannels:
    - {name: rows, direction: source, type: inline, config: {records: [{"id": 1}]}}
    - {name: nowhere, direction: sink, type: discard}
  scoringFlows:
    - {name: s, mode: streaming, replicas: 2, source: rows, sink: nowhere, steps: [{type: map, set: {x: 1}}]}
"""


async def running(service: JobService, text: str = PIPELINE) -> str:  # noqa: F811
    job, _ = await service.start(JobCreate(pipeline={"files": {"p.yaml": text}}))
    await service.transition(job.id, Event.INSTALL_STARTED)
    await service.transition(job.id, Event.INSTALLED)
    return job.id


def counts(n_in: int, n_out: int, failed: int = 0, filtered: int = 0, **who: object) -> FlowReport:
    return FlowReport.model_validate(
        {
            "records_in": n_in,
            "records_out": n_out,
            "records_failed": failed,
            "records_filtered": filtered,
            **who,
        }
    )


def invariant(row: object) -> bool:
    return bool(
        row.records_in  # type: ignore[attr-defined]
        == row.records_out + row.records_failed + row.records_filtered  # type: ignore[attr-defined]
    )


async def test_two_replicas_sum_with_a_row_each_and_the_last_report_does_not_win(
    service: JobService,  # noqa: F811
) -> None:
    job_id = await running(service)
    # batch flow b: two shards, each its own row; progress then completion per shard
    await service.report(job_id, "b", counts(10, 8, 1, 1, shard=0, shards=2), final=False)
    await service.report(job_id, "b", counts(7, 7, shard=1, shards=2), final=False)
    await service.report(job_id, "b", counts(20, 17, 2, 1, shard=0, shards=2), final=True)
    job = await service.get(job_id)
    flow = job.flows["b"]
    assert (flow.records_in, flow.records_out, flow.records_failed, flow.records_filtered) == (
        27,
        24,
        2,
        1,
    )
    assert invariant(flow) and all(invariant(r) for r in flow.replicas)
    assert [(r.index, r.state, r.records_in) for r in flow.replicas] == [
        (0, "COMPLETED", 20),
        (1, "RUNNING", 7),
    ]
    assert (flow.state, flow.shards_done) == ("RUNNING", 1)
    # a progress report of shard 0 arriving after its completion changes nothing
    await service.report(job_id, "b", counts(15, 15, shard=0, shards=2), final=False)
    assert (await service.get(job_id)).flows["b"].records_in == 27


async def test_batch_shards_on_kubernetes_are_their_index_whatever_pod_reports(
    service: JobService,  # noqa: F811
) -> None:
    """An Indexed Job's pods report with their names: each shard is one row, its index (a retried
    pod of the same index takes it over), the flow the sum of three rows (not of every report)."""
    job_id = await running(service)
    for shard in range(2):
        pod = f"{job_id}-flow-b-{shard}-x7k2p"
        await service.report(
            job_id, "b", counts(10, 10, shard=shard, shards=2, pod=pod), final=False
        )
        await service.report(
            job_id, "b", counts(20, 20, shard=shard, shards=2, pod=pod), final=False
        )
    retried = f"{job_id}-flow-b-1-q9w3z"  # shard 1's pod failed; its retry starts over
    await service.report(job_id, "b", counts(5, 5, shard=1, shards=2, pod=retried), final=False)
    flow = (await service.get(job_id)).flows["b"]
    assert [(r.index, r.pod, r.records_in) for r in flow.replicas] == [
        (0, f"{job_id}-flow-b-0-x7k2p", 20),
        (1, retried, 5),
    ]
    assert flow.records_in == 25


async def test_streaming_replicas_by_index_locally_and_by_pod_on_kubernetes(
    service: JobService,  # noqa: F811
) -> None:
    job, _ = await service.start(JobCreate(pipeline={"files": {"p.yaml": STREAMING}}))
    await service.transition(job.id, Event.INSTALL_STARTED)
    await service.transition(job.id, Event.INSTALLED)
    for index, n in ((0, 515), (1, 485), (0, 520)):  # each replica's running total
        await service.report(job.id, "s", counts(n, n, replica=index), final=False)
    flow = (await service.get(job.id)).flows["s"]
    assert flow.records_in == 520 + 485
    assert [(r.index, r.pod, r.records_in) for r in flow.replicas] == [
        (0, None, 520),
        (1, None, 485),
    ]
    for pod, n in (("j-x-flow-s-5d8c7-b2", 3), ("j-x-flow-s-5d8c7-a1", 4)):
        await service.report(job.id, "s", counts(n, n, pod=pod), final=False)
    flow = (await service.get(job.id)).flows["s"]
    assert [(r.index, r.pod) for r in flow.replicas][2:] == [
        (None, "j-x-flow-s-5d8c7-a1"),
        (None, "j-x-flow-s-5d8c7-b2"),
    ]
    assert flow.records_in == 520 + 485 + 3 + 4

    # cancelled: the running flow and every replica read CANCELLED, endpoints are gone
    await service.cancel(job.id)
    await service.transition(job.id, Event.FINALLY_DONE)
    job = await service.get(job.id)
    assert job.state == State.CANCELLED
    assert job.flows["s"].state == "CANCELLED"
    assert {r.state for r in job.flows["s"].replicas} == {"CANCELLED"}


async def test_flows_follow_the_job_when_it_ends(service: JobService) -> None:  # noqa: F811
    # succeeded: every flow COMPLETED
    job_id = await running(service)
    await service.report(job_id, "a", done(), final=True)
    await service.report(job_id, "b", done(0, 2), final=True)
    await service.report(job_id, "b", done(1, 2), final=True)
    await service.transition(job_id, Event.FINALLY_DONE)
    job = await service.get(job_id)
    assert job.state == State.SUCCEEDED
    assert {f.state for f in job.flows.values()} == {"COMPLETED"}

    # failed by flow a (its process failed, no report): a FAILED, b (running) CANCELLED
    job_id = await running(service)
    await service.report(job_id, "b", counts(3, 3, shard=0, shards=2), final=False)
    await service.fail(
        job_id,
        task="wait",
        reason="FlowFailed",
        message="Flow 'a' failed (exit code 1): cannot read /data/in.jsonl.",
        by="wait task",
        part=("flow", "a"),
        log_tail='{"event": "flow failed", "level": "error"}',
    )
    await service.transition(job_id, Event.FINALLY_DONE)
    job = await service.get(job_id)
    assert job.state == State.FAILED
    assert (job.flows["a"].state, job.flows["b"].state) == ("FAILED", "CANCELLED")
    assert job.flows["a"].error == job.message
    [error] = job.errors
    assert (error.loc, error.msg) == (["flows", "a"], job.message)
    assert error.log_tail == '{"event": "flow failed", "level": "error"}'
    assert "flow failed" not in (job.message or "")  # the tail stays out of the message

    # failed in install (a service could not load its model): no flow ever started
    job, _ = await service.start(JobCreate(pipeline={"files": {"p.yaml": STREAMING}}))
    await service.transition(job.id, Event.INSTALL_STARTED)
    # its processes start with the services and report while they wait for them
    await service.report(job.id, "s", counts(0, 0, replica=0), final=False)
    await service.fail(
        job.id,
        task="install",
        reason="ModelLoadFailed",
        message="Scoring service 'iris' could not load its model(s): no such file model.joblib.",
        by="install task",
        part=("service", "iris"),
    )
    await service.transition(job.id, Event.FINALLY_DONE)
    job = await service.get(job.id)
    assert (job.state, job.flows["s"].state) == (State.FAILED, "NOT_STARTED")
    assert [r.state for r in job.flows["s"].replicas] == ["NOT_STARTED"]
    assert job.errors[0].loc == ["services", "iris"]


async def test_endpoints_show_only_while_the_job_runs(service: JobService) -> None:  # noqa: F811
    job, _ = await service.start(JobCreate(pipeline={"files": {"p.yaml": STREAMING}}))
    assert job.services == {}  # no scoring service of its own
    await service.transition(job.id, Event.INSTALL_STARTED)
    url = "http://127.0.0.1:40123/score"
    await service.transition(job.id, Event.INSTALLED, endpoints=({}, {"s": url}))
    assert (await service.get(job.id)).flows["s"].endpoint == url
    public = (await service.get_public(job.id)).decode()
    assert url in public
    await service.cancel(job.id)  # STOPPING: the flow is going away
    assert (await service.get(job.id)).flows["s"].endpoint is None


def test_kubernetes_endpoints_are_the_chart_service_names() -> None:
    values = {
        "scoringServices": [
            {"name": "iris", "runtime": "python", "port": 8080},
            {"name": "elsewhere", "runtime": "external", "url": "http://x"},
        ],
        "scoringFlows": [
            {"name": "on-demand", "source": {"type": "http", "config": {"port": 8090}}},
            {"name": "batch", "source": {"type": "file", "config": {}}},
            {"name": "f" * 60, "source": {"type": "http", "config": {"path": "/v1/x"}}},
        ],
    }
    services, flows = pr.endpoints(values, job_id="j-abcdefghij", namespace="jobs")
    assert services == {"iris": "http://j-abcdefghij-iris.jobs.svc:8080"}
    assert flows["on-demand"] == "http://j-abcdefghij-flow-on-demand.jobs.svc:8090/score"
    long = flows["f" * 60]
    host = long.removeprefix("http://").split(".")[0]
    assert len(host) == 63 and long.endswith(".jobs.svc:8080/v1/x")


@pytest.mark.parametrize("state", [State.SUCCEEDED, State.FAILED, State.CANCELLED])
def test_no_flow_of_a_finished_job_reads_running(state: State) -> None:
    from datetime import UTC, datetime

    from scheduler.flowstatus import settle
    from scheduler.schemas import BackendInfo, FlowStatus, ReplicaStatus

    job = JobRecord(
        id="j-x",
        pipeline="p",
        state=state,
        flows={
            "never": FlowStatus(mode="streaming"),
            "ran": FlowStatus(mode="streaming", state="RUNNING", records_in=1, records_out=1),
        },
        created_at=datetime.now(UTC),
        content_hash="",
        backend=BackendInfo(kind="local"),
    )
    job.flows["ran"].replicas.append(ReplicaStatus(index=0, state="RUNNING"))
    settled = settle(job)
    states = {name: f.state for name, f in settled.flows.items()}
    assert "RUNNING" not in states.values() and "PENDING" not in states.values()
    if state == State.SUCCEEDED:
        assert states == {"never": "COMPLETED", "ran": "COMPLETED"}
    else:
        assert states == {"never": "NOT_STARTED", "ran": "CANCELLED"}
    assert settled.flows["ran"].replicas[0].state == states["ran"]


def test_a_succeeded_job_counts_every_shard_of_its_batch_flows_done() -> None:
    """On Kubernetes a job can end SUCCEEDED (the wait task saw the Indexed Job complete) before
    the last shard's completion report is in: its row, settled COMPLETED, counts as done."""
    from datetime import UTC, datetime

    from scheduler.flowstatus import settle
    from scheduler.schemas import BackendInfo, FlowStatus, ReplicaStatus

    rows = [
        ReplicaStatus(index=i, state=s, records_in=50, records_out=50)
        for i, s in enumerate(["COMPLETED", "COMPLETED", "RUNNING"])
    ]
    flow = FlowStatus(
        mode="batch", state="RUNNING", shards=3, shards_done=2, records_in=150, records_out=150
    )
    job = JobRecord(
        id="j-x",
        pipeline="p",
        state=State.SUCCEEDED,
        flows={"classify": flow.model_copy(update={"replicas": rows})},
        created_at=datetime.now(UTC),
        content_hash="",
        backend=BackendInfo(kind="tekton"),
    )
    settled = settle(job).flows["classify"]
    assert (settled.state, settled.shards, settled.shards_done) == ("COMPLETED", 3, 3)
    assert [r.state for r in settled.replicas] == ["COMPLETED"] * 3
