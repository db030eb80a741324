"""The Tekton runner (a `Runner`): Tekton runs each job's PipelineRun; this runner stops it.

Does I/O (the Kubernetes API through `tekton.kube`). Tekton starts a PipelineRun as soon as it is
created, and the job store creates it (`scheduler.stores.kubernetes`: on Kubernetes the run *is*
the job), so `start` has nothing left to do. The job's tasks (`tekscore task install|wait|
uninstall`, `tekton/cli.py`) run in pods and report through the API; what the runner does is
stop a job whose scoring the job service ended, after the service recorded the outcome:

- a cancel: `spec.status: CancelledRunFinally` on the PipelineRun (running TaskRuns are
  cancelled, the finally task `uninstall` still runs);
- a completion or a flow's failure: cancel the `wait` TaskRun
  (`spec.status: TaskRunCancelled` with a `statusMessage`); the run then ends `False/Cancelled`,
  which the store maps by the outcome. If the wait TaskRun does not exist yet (install still
  runs), a background task keeps looking for `TEKSCORE_WAIT_TASKRUN_TIMEOUT` seconds and then
  falls back to `CancelledRunFinally`.

Nothing survives a restart here, and nothing needs to: the outcome is on the run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any

import structlog

from scheduler.schemas import BackendInfo, JobRecord
from scheduler.states import State
from scheduler.stores.kubernetes import run_info
from tekton import pipelinerun as pr
from tekton.kube import PIPELINERUNS, TASKRUNS, Kube, NotFound
from tekton.status import FINISHED, job_status, succeeded_condition

log = structlog.get_logger("scheduler.runners.tekton")

COMPLETED = "all batch flows completed"  # the wait TaskRun's statusMessage on a completion
LOOKUP_EVERY = 0.25  # seconds between two looks for the wait TaskRun


class TektonRunner:
    """Stops PipelineRuns (a `Runner`); `close()` ends its background look-ups."""

    kind = "tekton"
    ends_during_install = True  # install runs in a pod: nothing asks again when it ends

    def __init__(self, *, kube: Kube, namespace: str, wait_timeout: float) -> None:
        self.kube = kube
        self.namespace = namespace
        self.lookups = max(1, round(wait_timeout / LOOKUP_EVERY))
        self._tasks: set[asyncio.Task[Any]] = set()

    def info(self, job_id: str) -> BackendInfo:
        return run_info(self.namespace, job_id)

    async def start(self, job: JobRecord, values: dict[str, Any]) -> None:
        """Nothing: Tekton started the PipelineRun when the store created it."""

    async def stop(self, job: JobRecord) -> None:
        if job.outcome == State.CANCELLED:
            await self.kube.patch(PIPELINERUNS, self.namespace, job.id, pr.cancel_patch())
            log.info("job cancelled", job_id=job.id)
            return
        message = job.message if job.outcome == State.FAILED and job.message else COMPLETED
        if not await self._cancel_wait(job.id, message):
            self._spawn(self._cancel_wait_later(job.id, message))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cancel_wait(self, job_id: str, message: str) -> bool:
        """Whether the wait TaskRun was found (and cancelled, if still running)."""
        items, _ = await self.kube.list(
            TASKRUNS, self.namespace, selector=f"{pr.LABEL_PIPELINERUN}={job_id}"
        )
        waits = [tr for tr in items if _wait_of(tr, job_id)]
        if not waits:
            return False
        for tr in waits:
            condition = succeeded_condition(tr)
            if (condition is not None and condition.finished) or (tr.get("spec") or {}).get(
                "status"
            ) == "TaskRunCancelled":
                continue
            name = str(tr["metadata"]["name"])
            with contextlib.suppress(NotFound):
                await self.kube.patch(
                    TASKRUNS, self.namespace, name, pr.cancel_taskrun_patch(message)
                )
            log.info("wait task cancelled", job_id=job_id, taskrun=name)
        return True

    async def _cancel_wait_later(self, job_id: str, message: str) -> None:
        """Look for the wait TaskRun a while; then cancel the whole run (finally runs)."""
        try:
            for _ in range(self.lookups):
                await asyncio.sleep(LOOKUP_EVERY)
                if await self._cancel_wait(job_id, message):
                    return
            try:
                run = await self.kube.get(PIPELINERUNS, self.namespace, job_id)
            except NotFound:
                return
            if job_status(run, []).state in FINISHED:
                return
            await self.kube.patch(PIPELINERUNS, self.namespace, job_id, pr.cancel_patch())
            log.info("no wait task: pipelinerun cancelled (finally runs)", job_id=job_id)
        except Exception:  # a background task: say why, never leave it unretrieved
            log.exception("could not stop the wait task", job_id=job_id)

    def observe(self, job: JobRecord) -> None:
        """Nothing: the wait task watches the release itself."""

    async def recover(self, jobs: list[JobRecord]) -> None:
        """Nothing: Tekton kept running them; their outcome is on their runs."""

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def problems(self) -> list[str]:
        """None of its own (the store checks the API and its watches)."""
        return []

    def log_files(self, job_id: str) -> dict[str, Path]:
        """None here: logs live in the pods (`tkn pr logs`, `kubectl logs`)."""
        return {}


def _wait_of(taskrun: Mapping[str, Any], job_id: str) -> bool:
    labels = (taskrun.get("metadata") or {}).get("labels") or {}
    return bool(
        labels.get(pr.LABEL_PIPELINERUN) == job_id and labels.get(pr.LABEL_PIPELINE_TASK) == "wait"
    )
