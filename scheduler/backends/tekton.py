"""The Kubernetes backend: every job is a Tekton PipelineRun, and the PipelineRun is the job.

Does I/O (the Kubernetes API through `kubernetes.aio`). `TektonJobs` implements the `Jobs`
protocol of `scheduler.backends.base` and keeps no state of its own: a job is read back from
its PipelineRun and TaskRuns, held in a watch-fed cache (`tekton.kube.Watcher`:
list, then watch from the list's resourceVersion, list again on 410 Gone or any error), so a
GET costs no API call and several replicas serve the same jobs. The pure parts live in
`tekton.pipelinerun` (the objects a job is made of) and `tekton.status` (PipelineRun + TaskRuns
-> job state).

- start: pre-process (`prepare_job`), create the IR ConfigMap, the callback-token Secret and
  the PipelineRun, then make the ConfigMap and Secret owned by the PipelineRun. With an
  Idempotency-Key the job id derives from the key, so a second start (on any replica) meets
  the same PipelineRun (409 on create) and compares the body hash annotation.
- report: flow counters merge (`with_report`) into the `tekscore.dev/flows` annotation
  (merge-patch with a resourceVersion precondition, retried on conflict). When every batch
  flow completed (or one failed) the outcome annotation is recorded first, then the `wait`
  TaskRun is cancelled (`TaskRunCancelled`); if it does not exist yet, a background retry
  falls back to `CancelledRunFinally` on the PipelineRun.
- cancel: outcome `cancelled`, then `spec.status: CancelledRunFinally`.

Every API call goes through `tekton.kube` (retried on 429, 5xx and connection errors).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections import defaultdict
from collections.abc import Awaitable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog

import ir
from common.names import is_dns1123_label
from ir.bundle import JobBundle, render_bundle
from scheduler.auth import callback_token
from scheduler.config import Settings
from scheduler.errors import IdempotencyConflict, JobFinished, JobNotFound
from scheduler.flowstatus import failure_item, settle, with_endpoints, with_report
from scheduler.jobs import body_hash, new_job_id, prepare_job, redact
from scheduler.limits import JobLimits
from scheduler.schemas import (
    BackendInfo,
    EventPublic,
    FlowReport,
    FlowStatus,
    JobCreate,
    JobQuery,
    JobRecord,
    JobsPublic,
    ServiceStatus,
    decode_cursor,
    encode_cursor,
)
from scheduler.states import State
from tekton import pipelinerun as pr
from tekton.kube import (
    CONFIGMAPS,
    PIPELINERUNS,
    SECRETS,
    TASKRUNS,
    Conflict,
    Kube,
    KubeError,
    NotFound,
    Resource,
    Watcher,
    connect,
)
from tekton.status import flows_annotation, job_status, parse_time

log = structlog.get_logger("scheduler.tekton")

OUTCOME_STATE = {"succeeded": State.SUCCEEDED, "failed": State.FAILED, "cancelled": State.CANCELLED}
ERROR_LIMIT = 4096  # characters of a flow error kept in the annotation


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def idempotent_job_id(key: str, namespace: str) -> str:
    """The job id of an Idempotency-Key: `j-` and 10 base-32 characters of its hash, so every
    replica starting the same key meets the same PipelineRun."""
    digest = hashlib.sha256(f"{namespace}/{key}".encode()).digest()
    return "j-" + base64.b32encode(digest).decode().lower()[:10]


# -- cursor (pure) -----------------------------------------------------------------------------


def sort_key(created: datetime, name: str) -> int:
    """Newest-first order as one integer: creation time (microseconds) and 50 bits of the
    name; the cursor is this integer (the format the API's cursor check accepts)."""
    micros = int(created.timestamp() * 1_000_000)
    suffix = name[2:] if name.startswith("j-") else ""
    if len(suffix) == 10 and all(c in _B32 for c in suffix):
        bits = 0
        for char in suffix:
            bits = (bits << 5) | _B32.index(char)
    else:
        bits = int.from_bytes(hashlib.sha256(name.encode()).digest()[:7], "big") >> 6
    return (max(micros, 0) << 50) | bits


_B32 = "abcdefghijklmnopqrstuvwxyz234567"  # the alphabet of `new_job_id`


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def is_job_run(obj: Mapping[str, Any]) -> bool:
    labels = _labels(obj)
    return labels.get(pr.LABEL_MANAGED_BY) == pr.MANAGED_BY and pr.LABEL_JOB in labels


def is_child(obj: Mapping[str, Any]) -> bool:
    return pr.LABEL_PIPELINERUN in _labels(obj)


# -- the jobs ----------------------------------------------------------------------------------


class TektonJobs:
    """Jobs as PipelineRuns (the `Jobs` protocol); build with `await TektonJobs.connect(...)`,
    then `await start()`; `close()` at shutdown."""

    kind = "tekton"

    def __init__(
        self,
        *,
        kube: Kube,
        settings: Settings,
        globals_: ir.GlobalValues,
        channels: dict[str, str],
        base_dir: Path | None = None,
        watch_seconds: int = 300,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.namespace = settings.namespace
        self.globals = globals_
        self.channels = channels
        self.base_dir = base_dir or Path.cwd()
        self.limits = JobLimits.from_settings(settings)
        # (attempts, delay) to find the wait TaskRun before falling back to CancelledRunFinally
        self.wait_lookup = (max(1, round(settings.wait_taskrun_timeout / 0.25)), 0.25)
        self.runs = Watcher(
            kube,
            PIPELINERUNS,
            self.namespace,
            selector=f"{pr.LABEL_MANAGED_BY}={pr.MANAGED_BY},{pr.LABEL_JOB}",
            keep=is_job_run,
            timeout=watch_seconds,
        )
        self.taskruns = Watcher(
            kube,
            TASKRUNS,
            self.namespace,
            selector=pr.LABEL_PIPELINERUN,
            keep=is_child,
            timeout=watch_seconds,
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._memo: dict[str, tuple[list[Mapping[str, Any]], JobRecord]] = {}

    @classmethod
    async def connect(
        cls,
        *,
        settings: Settings,
        globals_: ir.GlobalValues,
        channels: dict[str, str],
        **kwargs: Any,
    ) -> TektonJobs:
        """In-cluster configuration when running in a pod, else the kubeconfig ($KUBECONFIG)."""
        kube = await connect()
        log.info("kubernetes api", host=kube.host)
        return cls(kube=kube, settings=settings, globals_=globals_, channels=channels, **kwargs)

    async def start_watches(self, *, sync_timeout: float = 30.0) -> None:
        """Start the watches; wait (bounded) until both caches listed once."""
        for watcher in (self.runs, self.taskruns):
            self._spawn(watcher.run_forever())
        try:
            async with asyncio.timeout(sync_timeout):
                await self.runs.synced.wait()
                await self.taskruns.synced.wait()
        except TimeoutError:
            log.warning("watches not synced yet", namespace=self.namespace)

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.kube.close()

    # -- API calls (each retried on transient errors by `tekton.kube`) ---------------------------

    async def _get_run(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.kube.get(PIPELINERUNS, self.namespace, name)
        except NotFound:
            return None

    async def _patch(self, resource: Resource, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge-patch (RFC 7386) of a PipelineRun or TaskRun."""
        patched = await self.kube.patch(resource, self.namespace, name, body)
        (self.runs if resource == PIPELINERUNS else self.taskruns).put(patched)
        return patched

    async def _taskruns_of(self, name: str, *, fresh: bool = False) -> list[dict[str, Any]]:
        if not fresh:
            return self._taskruns_cached(name)
        items, _ = await self.kube.list(
            TASKRUNS, self.namespace, selector=f"{pr.LABEL_PIPELINERUN}={name}"
        )
        return [tr for tr in items if _labels(tr).get(pr.LABEL_PIPELINERUN) == name]

    async def _create_core(self, resource: Resource, body: dict[str, Any]) -> None:
        """Create a ConfigMap or Secret; one that already exists (a replayed start) is kept."""
        with contextlib.suppress(Conflict):
            await self.kube.create(resource, self.namespace, body)

    async def _own(self, resource: Resource, name: str, run: Mapping[str, Any]) -> None:
        uid = (run.get("metadata") or {}).get("uid")
        if not uid:
            log.warning("pipelinerun has no uid: not owning", object=f"{resource.plural}/{name}")
            return
        body = pr.owner_patch(name=str(run["metadata"]["name"]), uid=str(uid))
        with contextlib.suppress(NotFound):
            await self.kube.patch(resource, self.namespace, name, body)

    async def _delete_core(self, resource: Resource, name: str) -> None:
        try:
            await self.kube.delete(resource, self.namespace, name)
        except KubeError as exc:
            log.warning("cleanup failed", object=f"{resource.plural}/{name}", error=str(exc))

    # -- start ---------------------------------------------------------------------------------

    def info(self, job_id: str) -> BackendInfo:
        return BackendInfo(
            kind="tekton", namespace=self.namespace, pipelinerun=job_id, release=job_id
        )

    async def start(
        self, request: JobCreate, *, idempotency_key: str | None = None
    ) -> tuple[JobRecord, bool]:
        """Pre-process, then create the IR ConfigMap, callback Secret and PipelineRun."""
        digest = body_hash(request)
        if idempotency_key is not None:
            job_id = idempotent_job_id(idempotency_key, self.namespace)
            seen = self.runs.objects.get(job_id) or await self._get_run(job_id)
            if seen is not None:
                return self._replay(seen, idempotency_key, digest)
        else:
            job_id = new_job_id()
        bound = log.bind(job_id=job_id)
        bundle, job, values = await prepare_job(  # the install task renders the bundle again
            request,
            job_id=job_id,
            globals_=self.globals,
            channels=self.channels,
            base_dir=self.base_dir,
            backend=self.info,
            limits=self.limits,
        )
        services, flows = pr.endpoints(values, job_id=job_id, namespace=self.namespace)
        job = with_endpoints(job, services=services, flows=flows)  # shown while it runs
        flows_doc = _flows_doc(job)
        s = self.settings
        run = pr.build_pipelinerun(
            pr.RunSpec(
                job_id=job_id,
                pipeline=job.pipeline,
                namespace=self.namespace,
                scheduler_url=s.base_url(),
                pipeline_ref=s.pipeline,
                service_account=s.task_service_account,
                chart=s.chart_path,
                timeouts=pr.timeouts(pipeline=s.pipeline_timeout, finally_=s.finally_timeout),
                annotations=pr.job_annotations(
                    name=job.name,
                    labels=job.labels,
                    content_hash=job.content_hash,
                    created_at=job.created_at.isoformat(),
                    body_hash=digest,
                    flows=flows_doc,
                ),
                idempotency_key=idempotency_key,
            )
        )
        configmap = pr.build_ir_configmap(
            job_id=job_id,
            pipeline=job.pipeline,
            namespace=self.namespace,
            bundle_json=bundle.model_dump_json(),
        )
        secret = pr.build_callback_secret(
            job_id=job_id,
            pipeline=job.pipeline,
            namespace=self.namespace,
            token=callback_token(s.secret_bytes(), job_id),
        )
        await self._create_core(CONFIGMAPS, configmap)
        await self._create_core(SECRETS, secret)
        try:
            created = await self.kube.create(PIPELINERUNS, self.namespace, run)
        except Conflict:
            if idempotency_key is not None:
                seen = await self._get_run(job_id)
                if seen is not None:
                    return self._replay(seen, idempotency_key, digest)
            raise
        except KubeError:
            await self._delete_core(CONFIGMAPS, pr.ir_configmap_name(job_id))
            await self._delete_core(SECRETS, pr.callback_secret_name(job_id))
            raise
        if not (created.get("metadata") or {}).get("uid"):
            created = await self._get_run(job_id) or created or run  # an answer without the object
        self.runs.put(created)
        await self._own(CONFIGMAPS, pr.ir_configmap_name(job_id), created)
        await self._own(SECRETS, pr.callback_secret_name(job_id), created)
        bound.info("job created", pipeline=job.pipeline, content_hash=job.content_hash)
        return self._record(created, []), True

    def _replay(self, run: Mapping[str, Any], key: str, digest: str) -> tuple[JobRecord, bool]:
        annotations = (run.get("metadata") or {}).get("annotations") or {}
        if annotations.get(pr.ANN_BODY_HASH) != digest:
            raise IdempotencyConflict(key)
        name = str(run["metadata"]["name"])
        return self._record(run, self._taskruns_cached(name)), False

    def _taskruns_cached(self, name: str) -> list[dict[str, Any]]:
        return [
            tr
            for tr in self.taskruns.objects.values()
            if _labels(tr).get(pr.LABEL_PIPELINERUN) == name
        ]

    # -- reading jobs --------------------------------------------------------------------------

    def _record(self, run: Mapping[str, Any], taskruns: Iterable[Mapping[str, Any]]) -> JobRecord:
        """The job of a PipelineRun (pure mapping via `tekton.status`)."""
        trs = list(taskruns)
        meta = run.get("metadata") or {}
        name = str(meta.get("name"))
        memo_key: list[Mapping[str, Any]] = [run, *trs]
        memo = self._memo.get(name)
        if (
            memo is not None
            and len(memo[0]) == len(memo_key)
            and all(a is b for a, b in zip(memo[0], memo_key, strict=True))
        ):
            return memo[1]
        annotations = meta.get("annotations") or {}
        labels = meta.get("labels") or {}
        st = job_status(run, trs)
        doc = st.flows
        flows = _entries(FlowStatus, doc.get("flows"), job_id=name, kind="flow")
        services = _entries(ServiceStatus, doc.get("services"), job_id=name, kind="service")
        try:
            job_labels = json.loads(annotations.get(pr.ANN_LABELS) or "{}")
        except ValueError:
            job_labels = {}
        created = (
            parse_time(annotations.get(pr.ANN_CREATED_AT))
            or parse_time(meta.get("creationTimestamp"))
            or datetime.now(UTC)
        )
        state = State(st.state)
        part = st.failed_part.split("/", 1) if st.failed_part else None
        errors = []
        if state == State.FAILED:
            errors = [
                failure_item(
                    task=st.failed_task or "pipeline",
                    message=st.message or "",
                    part=part,
                    log_tail=None,  # the pods' logs stay in the cluster: kubectl logs
                )
            ]
        record = JobRecord(
            id=name,
            name=annotations.get(pr.ANN_NAME),
            pipeline=labels.get(pr.LABEL_PIPELINE, ""),
            state=state,
            task=st.task,
            reason=st.reason,
            message=st.message,
            errors=errors,
            labels=job_labels if isinstance(job_labels, dict) else {},
            flows=flows,
            services=services,
            created_at=created,
            started_at=st.started_at,
            finished_at=st.finished_at,
            content_hash=annotations.get(pr.ANN_CONTENT_HASH, ""),
            backend=self.info(name),
            outcome=OUTCOME_STATE.get(st.outcome or ""),
            failed_task=st.failed_task,
            failed_part=part,
        )
        record = settle(record)
        self._memo[name] = (memo_key, record)
        return record

    async def _run(self, job_id: str) -> dict[str, Any]:
        """The job's PipelineRun: from the cache, else (a job this replica has not seen yet)
        from the API; `JobNotFound` when there is none."""
        run = self.runs.objects.get(job_id)
        if run is None:
            run = await self._get_run(job_id) if _plausible(job_id) else None
            if run is None or not is_job_run(run):
                raise JobNotFound(job_id)
            self.runs.put(run)
        return run

    async def get(self, job_id: str) -> JobRecord:
        run = await self._run(job_id)
        return self._record(run, self._taskruns_cached(job_id))

    async def events(self, job_id: str) -> list[EventPublic]:
        run = await self._run(job_id)
        st = job_status(run, self._taskruns_cached(job_id))
        return [
            EventPublic(
                at=e.at, state=State(e.state), task=e.task, reason=e.reason, message=e.message
            )
            for e in st.history
        ]

    async def bundle(self, job_id: str) -> JobBundle:
        try:
            cm = await self.kube.get(CONFIGMAPS, self.namespace, pr.ir_configmap_name(job_id))
        except NotFound:
            raise JobNotFound(job_id) from None
        data = cm.get("data") or {}
        if pr.IR_KEY not in data:
            raise JobNotFound(job_id)
        return JobBundle.model_validate_json(data[pr.IR_KEY])

    async def values(self, job_id: str) -> dict[str, Any]:
        rendered = await asyncio.to_thread(render_bundle, await self.bundle(job_id))
        values: dict[str, Any] = redact(rendered.values)
        return values

    def _all(self) -> list[JobRecord]:
        by_run: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        for tr in self.taskruns.objects.values():
            by_run[_labels(tr).get(pr.LABEL_PIPELINERUN, "")].append(tr)
        for gone in self._memo.keys() - self.runs.objects.keys():
            del self._memo[gone]
        return [self._record(run, by_run.get(name, [])) for name, run in self.runs.objects.items()]

    def _page(self, query: JobQuery) -> tuple[list[JobRecord], str | None]:
        after = decode_cursor(query.cursor) if query.cursor is not None else None
        keyed = []
        for job in self._all():
            if query.state is not None and job.state != query.state:
                continue
            if query.pipeline is not None and job.pipeline != query.pipeline:
                continue
            if any(job.labels.get(k) != v for k, v in query.labels.items()):
                continue
            key = sort_key(job.created_at, job.id)
            if after is not None and key >= after:
                continue
            keyed.append((key, job))
        keyed.sort(key=lambda kj: kj[0], reverse=True)
        page = keyed[: query.limit]
        nxt = encode_cursor(page[-1][0]) if len(keyed) > query.limit else None
        return [job for _, job in page], nxt

    async def get_public(self, job_id: str) -> bytes:
        return (await self.get(job_id)).public().model_dump_json().encode()

    async def list_public(self, query: JobQuery) -> bytes:
        items, nxt = self._page(query)
        return JobsPublic(items=[j.public() for j in items], next=nxt).model_dump_json().encode()

    async def count_by_state(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self._all():
            counts[str(job.state)] = counts.get(str(job.state), 0) + 1
        return counts

    async def ready(self) -> list[str]:
        problems = []
        for kind, watcher in (("PipelineRun", self.runs), ("TaskRun", self.taskruns)):
            if not watcher.synced.is_set():
                problems.append(f"{kind} watch: not synced")
            elif watcher.error:
                problems.append(f"{kind} watch: {watcher.error}")
        try:
            await self.kube.retrying(attempts=1).list(
                PIPELINERUNS, self.namespace, limit=1, request_timeout=5.0
            )
        except KubeError as exc:
            problems.append(f"kubernetes api: {type(exc).__name__}: {exc}")
        return problems

    def log_files(self, job_id: str) -> dict[str, Path]:
        """None here: logs live in the pods (`tkn pr logs`, `kubectl logs`)."""
        return {}

    # -- changes -------------------------------------------------------------------------------

    async def cancel(self, job_id: str) -> JobRecord:
        """Record outcome `cancelled`, then `spec.status: CancelledRunFinally` (idempotent)."""
        async with self._locks[job_id]:
            run = await self._run(job_id)
            job = self._record(run, self._taskruns_cached(job_id))
            if job.state.finished:
                raise JobFinished(job.public())
            annotations = (run.get("metadata") or {}).get("annotations") or {}
            if not annotations.get(pr.ANN_OUTCOME):
                run = await self._record_outcome(
                    job_id, "cancelled", reason="Cancelled", message="cancelled by request"
                )
                if (run.get("spec") or {}).get("status") != "CancelledRunFinally":
                    run = await self._patch(PIPELINERUNS, job_id, pr.cancel_patch())
                log.info("job cancelled", job_id=job_id)
        return await self.get(job_id)

    async def _record_outcome(
        self, job_id: str, outcome: str, *, reason: str, message: str
    ) -> dict[str, Any]:
        return await self._patch(
            PIPELINERUNS,
            job_id,
            {
                "metadata": {
                    "annotations": {
                        pr.ANN_OUTCOME: outcome,
                        pr.ANN_OUTCOME_REASON: reason,
                        pr.ANN_OUTCOME_MESSAGE: message,
                        pr.ANN_OUTCOME_AT: now_iso(),
                    }
                }
            },
        )

    async def report(self, job_id: str, flow: str, report: FlowReport, *, final: bool) -> JobRecord:
        """Merge a flow report into the run's annotation; complete the job when due."""
        if report.error is not None and len(report.error) > ERROR_LIMIT:
            report = report.model_copy(update={"error": report.error[:ERROR_LIMIT] + "..."})
        async with self._locks[job_id]:
            job, run = await self._store_report(job_id, flow, report, final=final)
            annotations = (run.get("metadata") or {}).get("annotations") or {}
            decided = bool(annotations.get(pr.ANN_OUTCOME)) or job.state.finished
            outcome: tuple[str, str, str] | None = None
            if final and report.error and not decided:
                outcome = ("failed", "FlowFailed", f"Flow {flow!r} failed: {report.error}")
            elif final and not decided and _all_batch_done(job):
                outcome = ("succeeded", "Completed", "all batch flows completed")
            if outcome is not None:
                await self._record_outcome(
                    job_id, outcome[0], reason=outcome[1], message=outcome[2]
                )
                log.info("job outcome", job_id=job_id, outcome=outcome[0], reason=outcome[1])
                await self._stop_wait(job_id, outcome[2])
        log.info(
            "flow report",
            job_id=job_id,
            flow=flow,
            final=final,
            records_in=job.flows[flow].records_in,
            records_out=job.flows[flow].records_out,
            records_failed=job.flows[flow].records_failed,
        )
        return await self.get(job_id)

    async def _store_report(
        self, job_id: str, flow: str, report: FlowReport, *, final: bool
    ) -> tuple[JobRecord, dict[str, Any]]:
        """Read the run fresh, merge the report, merge-patch with a resourceVersion
        precondition (another replica may write the same annotation): retried on 409."""
        for _ in range(10):
            run = await self._get_run(job_id)
            if run is None or not is_job_run(run):
                raise JobNotFound(job_id)
            job = self._record(run, self._taskruns_cached(job_id))
            if flow not in job.flows:
                raise JobNotFound(f"{job_id}/flows/{flow}")
            if job.state.finished:  # a finished PipelineRun is immutable, and so is its job
                raise JobFinished(job.public())
            job = with_report(job, flow, report, final=final)
            doc = _flows_doc(job, before=flows_annotation(run))
            flows_json = json.dumps(doc, sort_keys=True, separators=(",", ":"))
            meta: dict[str, Any] = {"annotations": {pr.ANN_FLOWS: flows_json}}
            version = (run.get("metadata") or {}).get("resourceVersion")
            if version:
                meta["resourceVersion"] = version
            try:
                patched = await self._patch(PIPELINERUNS, job_id, {"metadata": meta})
            except Conflict:
                continue
            return job, patched or run
        raise RuntimeError(f"job {job_id}: the flow report kept conflicting with other writers")

    async def _stop_wait(self, job_id: str, message: str) -> None:
        """Cancel the wait TaskRun now if it exists; else keep looking in the background and
        fall back to `CancelledRunFinally` on the PipelineRun."""
        if not await self._cancel_wait(job_id, message, fresh=True):
            self._spawn(self._stop_wait_later(job_id, message))

    async def _cancel_wait(self, job_id: str, message: str, *, fresh: bool) -> bool:
        """Whether the wait TaskRun was found (and cancelled, if still running)."""
        waits = [
            tr
            for tr in await self._taskruns_of(job_id, fresh=fresh)
            if _labels(tr).get(pr.LABEL_PIPELINE_TASK) == "wait"
        ]
        if not waits:
            return False
        for tr in waits:
            spec = tr.get("spec") or {}
            conditions = (tr.get("status") or {}).get("conditions") or []
            finished = any(
                c.get("type") == "Succeeded" and c.get("status") in ("True", "False")
                for c in conditions
            )
            if finished or spec.get("status") == "TaskRunCancelled":
                continue
            name = str(tr["metadata"]["name"])
            with contextlib.suppress(NotFound):
                await self._patch(TASKRUNS, name, pr.cancel_taskrun_patch(message))
            log.info("wait task cancelled", job_id=job_id, taskrun=name)
        return True

    async def _stop_wait_later(self, job_id: str, message: str) -> None:
        attempts, delay = self.wait_lookup
        try:
            for _ in range(attempts):
                await asyncio.sleep(delay)
                if await self._cancel_wait(job_id, message, fresh=True):
                    return
            run = await self._get_run(job_id)
            if run is None:
                return
            if job_status(run, []).state in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return
            await self._patch(PIPELINERUNS, job_id, pr.cancel_patch())
            log.info("no wait task: pipelinerun cancelled (finally runs)", job_id=job_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not stop the wait task", job_id=job_id)


_Entry = TypeVar("_Entry", FlowStatus, ServiceStatus)


def _entries(model: type[_Entry], raw: Any, *, job_id: str, kind: str) -> dict[str, _Entry]:
    """The flows' or services' entries of the annotation; one that does not read is left out."""
    out: dict[str, _Entry] = {}
    for name, value in (raw or {}).items():
        try:
            out[name] = model.model_validate(value)
        except ValueError:
            log.warning("unreadable status entry", job_id=job_id, kind=kind, name=name)
    return out


def _flows_doc(job: JobRecord, before: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `tekscore.dev/flows` annotation: each flow's status (its replica rows included) and
    each service's (its endpoint). The endpoints recorded at start stay (`before`): the status
    shows them only while the job runs."""
    doc: dict[str, Any] = {
        "flows": {k: v.model_dump(mode="json") for k, v in job.flows.items()},
        "services": {k: v.model_dump(mode="json") for k, v in job.services.items()},
    }
    for kind in ("flows", "services"):
        earlier = (before or {}).get(kind) or {}
        for name, entry in doc[kind].items():
            was = earlier.get(name)
            if entry.get("endpoint") is None and isinstance(was, dict) and was.get("endpoint"):
                entry["endpoint"] = was["endpoint"]
    return doc


def _all_batch_done(job: JobRecord) -> bool:
    batch = [f for f in job.flows.values() if f.mode == "batch"]
    return bool(batch) and all(f.state == "COMPLETED" for f in batch)


def _plausible(name: str) -> bool:
    """Whether `name` can be a PipelineRun name (avoid API calls for junk ids)."""
    return is_dns1123_label(name)
