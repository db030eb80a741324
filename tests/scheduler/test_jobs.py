"""The job service in-process, over a real SQLite store and a recording stand-in for the backend:
pre-processing runs once per job (`/values` and the install task get the render of the start,
even when rendering again would now fail), and exactly one place decides that a job's scoring
is over (`complete`, `fail`): the completion callback, the install task and the wait task ask
it, the first that can end the job does, every later one is told so, and the backend's task is
stopped once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import ir
import scheduler.jobs
from scheduler.jobs import JobService
from scheduler.rules import Completion
from scheduler.schemas import BackendInfo, FlowReport, JobCreate, JobRecord
from scheduler.states import Event, State
from scheduler.stores.sqlite import SqliteStore

PIPELINE = """\
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {name: two-flows}
spec:
  dataChannels:
    - {name: rows, direction: source, type: inline, config: {records: [{"id": 1}]}}
    - {name: nowhere, direction: sink, type: discard}
  scoringFlows:
    - {name: a, source: rows, sink: nowhere, steps: [{type: map, set: {seen: true}}]}
    - {name: b, source: rows, sink: nowhere, shards: 2, steps: [{type: map, set: {x: 1}}]}
"""


class Recorder:
    """Stands in for the runner: records what the job service asks of it."""

    kind = "local"
    ends_during_install = False

    def __init__(self) -> None:
        self.started: list[str] = []
        self.stopped: list[str] = []

    def info(self, job_id: str) -> BackendInfo:
        return BackendInfo(kind="local", release=job_id)

    async def start(self, job: JobRecord, values: dict[str, Any]) -> None:
        self.started.append(job.id)

    async def stop(self, job: JobRecord) -> None:
        self.stopped.append(job.id)

    def observe(self, job: JobRecord) -> None:
        pass

    async def recover(self, jobs: list[JobRecord]) -> None:
        pass

    async def close(self) -> None:
        pass

    async def problems(self) -> list[str]:
        return []

    def log_files(self, job_id: str) -> dict[str, Path]:
        return {}


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[JobService]:
    store = await SqliteStore.open(tmp_path / "state.db")
    yield JobService(
        store=store,
        runner=lambda _: Recorder(),
        globals_=ir.GlobalValues(),
        channels={},
        base_dir=tmp_path,
    )
    await store.close()


def recorder(service: JobService) -> Recorder:
    assert isinstance(service.runner, Recorder)
    return service.runner


async def running(service: JobService) -> str:
    job, created = await service.start(JobCreate(pipeline={"files": {"p.yaml": PIPELINE}}))
    assert created and recorder(service).started == [job.id]
    await service.transition(job.id, Event.INSTALL_STARTED)
    await service.transition(job.id, Event.INSTALLED)
    return job.id


def done(shard: int = 0, shards: int = 1) -> FlowReport:
    return FlowReport(records_in=1, records_out=1, records_failed=0, shard=shard, shards=shards)


async def test_values_are_the_render_of_the_start_never_rendered_again(
    service: JobService, monkeypatch: pytest.MonkeyPatch
) -> None:
    job, _ = await service.start(
        JobCreate(pipeline={"files": {"p.yaml": PIPELINE}}, labels={"team": "a"})
    )

    def no_second_render(bundle: ir.JobBundle) -> ir.Rendered:
        raise AssertionError("pre-processing ran again")

    monkeypatch.setattr(scheduler.jobs, "render_bundle", no_second_render)
    rendered = await service.rendered(job.id)
    assert rendered["contentHash"] == job.content_hash
    assert rendered["job"] == {
        "id": job.id,
        "pipeline": "two-flows",
        "labels": {"team": "a"},
        "parameters": {},
    }
    assert await service.values(job.id) == rendered  # nothing secret-looking to redact here
    assert [f["name"] for f in rendered["scoringFlows"]] == ["a", "b"]


async def test_the_callback_ends_scoring_once_and_the_wait_task_is_told(
    service: JobService,
) -> None:
    job_id = await running(service)
    await service.report(job_id, "a", done(), final=True)
    await service.report(job_id, "b", done(0, 2), final=True)
    assert (await service.get(job_id)).state == State.RUNNING  # shard 1 of b still runs
    assert recorder(service).stopped == []
    await service.report(job_id, "b", done(1, 2), final=True)
    job = await service.get(job_id)
    assert (job.state, job.outcome, job.reason) == (State.STOPPING, State.SUCCEEDED, "Completed")
    assert recorder(service).stopped == [job_id]  # the wait task is stopped, once
    # the wait task, seeing every process exit 0 too, asks and is told it was decided
    assert await service.complete(job_id, by="wait task", processes_done=True) == (
        Completion.ALREADY_ENDED
    )
    await service.report(job_id, "b", done(1, 2), final=True)  # a retried callback
    assert recorder(service).stopped == [job_id]
    states = [e.state for e in await service.events(job_id)]
    assert states == [State.PENDING, State.INSTALLING, State.RUNNING, State.STOPPING]


async def test_flows_that_report_during_install_leave_the_decision_to_install(
    service: JobService,
) -> None:
    job, _ = await service.start(JobCreate(pipeline={"files": {"p.yaml": PIPELINE}}))
    await service.transition(job.id, Event.INSTALL_STARTED)
    for flow, report in (("a", done()), ("b", done(0, 2)), ("b", done(1, 2))):
        await service.report(job.id, flow, report, final=True)
    assert (await service.get(job.id)).state == State.INSTALLING
    assert recorder(service).stopped == []
    await service.transition(job.id, Event.INSTALLED)
    assert await service.complete(job.id, by="install task") == Completion.ENDED
    assert (await service.get(job.id)).state == State.STOPPING


async def test_the_wait_task_ends_a_job_whose_callbacks_were_lost(service: JobService) -> None:
    job_id = await running(service)
    assert await service.complete(job_id, by="install task") == Completion.NOT_YET
    assert await service.complete(job_id, by="wait task", processes_done=True) == Completion.ENDED
    assert await service.complete(job_id, by="flow a") == Completion.ALREADY_ENDED
    assert (await service.get(job_id)).outcome == State.SUCCEEDED


async def test_a_failure_ends_a_job_once_and_a_later_completion_is_told(
    service: JobService,
) -> None:
    job_id = await running(service)
    failed = FlowReport(records_in=1, records_out=0, records_failed=1, error="sink exploded")
    await service.report(job_id, "a", failed, final=True)
    job = await service.get(job_id)
    assert (job.state, job.outcome, job.reason) == (State.STOPPING, State.FAILED, "FlowFailed")
    assert job.message == "Flow 'a' failed: sink exploded"
    assert recorder(service).stopped == [job_id]
    assert await service.complete(job_id, by="wait task", processes_done=True) == (
        Completion.ALREADY_ENDED
    )
    assert (
        await service.fail(
            job_id, task="wait", reason="FlowFailed", message="again", by="wait task"
        )
        == Completion.ALREADY_ENDED
    )
    assert (await service.get(job_id)).message == "Flow 'a' failed: sink exploded"


async def test_a_failed_completion_during_install_is_left_to_the_wait_task(
    service: JobService,
) -> None:
    job, _ = await service.start(JobCreate(pipeline={"files": {"p.yaml": PIPELINE}}))
    await service.transition(job.id, Event.INSTALL_STARTED)
    failed = FlowReport(records_in=1, records_out=0, records_failed=1, error="boom")
    await service.report(job.id, "a", failed, final=True)
    after = await service.get(job.id)
    assert after.state == State.INSTALLING and after.flows["a"].error == "boom"
    assert recorder(service).stopped == []


class Ended:
    """Stands in for a re-attached installer whose batch-flow processes ended while the
    scheduler was down: their termination records say so, with their counters."""

    def completed_flows(self) -> list[tuple[str, dict[str, int]]]:
        counts = {"records_in": 5, "records_out": 4, "records_failed": 1, "records_filtered": 0}
        return [
            ("a", {**counts, "shard": 0, "shards": 1}),
            ("b", {**counts, "shard": 1, "shards": 2}),
            ("b", {"shard": 0}),  # a record without counters adds nothing
        ]


async def test_counts_of_flows_whose_callbacks_were_lost_come_from_their_records(
    service: JobService, tmp_path: Path
) -> None:
    from scheduler.runners.local import LocalRunner

    job_id = await running(service)
    await service.report(job_id, "b", done(0, 2), final=True)  # shard 0 of b did report
    runner = LocalRunner(service=service, home=tmp_path, base_url="http://x", secret=b"s")
    await runner.counts_from_records(job_id, Ended())  # type: ignore[arg-type]
    job = await service.get(job_id)
    assert (job.flows["a"].records_in, job.flows["a"].records_failed) == (5, 1)
    assert job.flows["a"].state == "COMPLETED"
    assert (job.flows["b"].records_in, job.flows["b"].shards_done) == (6, 2)
    assert await service.complete(job_id, by="wait task", processes_done=True) == Completion.ENDED
