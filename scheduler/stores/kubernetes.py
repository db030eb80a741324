"""The job store on Kubernetes (a `JobStore`): the PipelineRun is the job.

Does I/O (the Kubernetes API through `tekton.kube`). It keeps **no state of its own**, so several
scheduler replicas serve the same jobs and a restart loses nothing (docs/kubernetes.md):

- a job is its PipelineRun (labels, annotations: name, labels, content hash, creation time,
  body hash, the flows' and services' status, the outcome the scheduler decided) and its
  TaskRuns, read from a watch-fed cache (`tekton.kube.Watcher`: list, watch from the list's
  resourceVersion, list again on 410 Gone or any error), so a GET costs no API call; a job this
  replica has not seen yet is fetched once. The state is mapped by `tekton.status` (pure);
- the job's bundle, and the values rendered from it at start, are the IR ConfigMap
  `<job>-ir` (`job.json`, `values.json`); the callback token is the Secret `<job>-callback`;
- `create` creates the ConfigMap, the Secret and the PipelineRun (which Tekton then starts: on
  Kubernetes, keeping the job is starting it), then makes the first two owned by the run. With
  an Idempotency-Key the job id derives from the key, so a second start on any replica meets the
  same PipelineRun (409 on create: `DuplicateKey`);
- `update` writes what this store keeps of a change, the flows' and services' status (a new
  key per change, `tekscore.dev/flows.<n>`, so that Tekton's reconciler cannot undo it:
  `tekton.pipelinerun`) and the outcome (`tekscore.dev/outcome`, `-reason`, `-message`, `-at`),
  as one merge-patch carrying the `resourceVersion` it read; another replica's write in between
  answers 409 and the change is applied again on the run as it is then. Every other transition
  is Tekton's to make.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import structlog

from common.names import is_dns1123_label
from ir.bundle import JobBundle
from scheduler.auth import callback_token
from scheduler.config import Settings
from scheduler.errors import JobNotFound
from scheduler.flowstatus import failure_item, settle, with_endpoints
from scheduler.rules import new_job_id
from scheduler.schemas import (
    BackendInfo,
    EventPublic,
    FlowStatus,
    JobQuery,
    JobRecord,
    JobsPublic,
    ServiceStatus,
    decode_cursor,
    encode_cursor,
)
from scheduler.states import State
from scheduler.stores.base import Change, DuplicateKey, StoreError
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
)
from tekton.status import flows_recorded, job_status, parse_time

log = structlog.get_logger("scheduler.stores.kubernetes")

OUTCOME_STATE = {"succeeded": State.SUCCEEDED, "failed": State.FAILED, "cancelled": State.CANCELLED}
CONFLICTS = 10  # writes tried before a flow report that keeps conflicting is given up


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def run_info(namespace: str, job_id: str) -> BackendInfo:
    """Where a job runs on Kubernetes (its `backend` in the API)."""
    return BackendInfo(kind="tekton", namespace=namespace, pipelinerun=job_id, release=job_id)


def idempotent_job_id(key: str, namespace: str) -> str:
    """The job id of an Idempotency-Key: `j-` and 10 base-32 characters of its hash, so every
    replica starting the same key meets the same PipelineRun."""
    digest = hashlib.sha256(f"{namespace}/{key}".encode()).digest()
    return "j-" + base64.b32encode(digest).decode().lower()[:10]


# -- pure --------------------------------------------------------------------------------------


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


def flows_doc(job: JobRecord, before: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The flows' status annotation (`tekscore.dev/flows[.<n>]`): each flow's status (its
    replica rows included) and each service's (its endpoint). The endpoints recorded at start
    stay (`before`, the annotation as it was): the status shows them only while the job runs."""
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


def annotations_of(
    before: JobRecord, after: JobRecord, *, annotations: Mapping[str, str]
) -> dict[str, str | None]:
    """The annotations (a merge patch: None removes one) that record a change of the job (what
    this store keeps of it) on a run whose annotations are `annotations`: the flows' status as
    its next generation (`tekton.pipelinerun.flows_change`), the outcome once; a transition
    Tekton makes is refused (`StoreError`)."""
    out: dict[str, str | None] = {}
    recorded = flows_recorded(annotations)
    doc = flows_doc(after, before=recorded)
    if doc != recorded:
        out.update(pr.flows_change(annotations, doc))
    if after.outcome is not None and before.outcome is None:
        out[pr.ANN_OUTCOME] = str(after.outcome).lower()
        out[pr.ANN_OUTCOME_REASON] = after.reason or ""
        if after.message:
            out[pr.ANN_OUTCOME_MESSAGE] = after.message
        out[pr.ANN_OUTCOME_AT] = now_iso()
    elif (after.state, after.outcome) != (before.state, before.outcome):
        raise StoreError(
            f"job {after.id}: {before.state} -> {after.state} is Tekton's transition to make, "
            "not the scheduler's"
        )
    return out


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


# -- the store ---------------------------------------------------------------------------------


class PipelineRunStore:
    """Jobs as PipelineRuns (a `JobStore`); `await open()` starts the watches, `close()` stops
    them (the client is the caller's)."""

    def __init__(self, *, kube: Kube, settings: Settings, watch_seconds: int = 300) -> None:
        self.kube = kube
        self.settings = settings
        self.namespace = settings.namespace
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
        self._memo: dict[str, tuple[list[Mapping[str, Any]], JobRecord]] = {}

    async def open(self, *, sync_timeout: float = 30.0) -> None:
        """Start the watches; wait (bounded) until both caches listed once."""
        for watcher in (self.runs, self.taskruns):
            task = asyncio.create_task(watcher.run_forever())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            async with asyncio.timeout(sync_timeout):
                await self.runs.synced.wait()
                await self.taskruns.synced.wait()
        except TimeoutError:
            log.warning("watches not synced yet", namespace=self.namespace)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- API calls (retried on transient errors by `tekton.kube`) --------------------------------

    async def _fetch(self, name: str) -> dict[str, Any] | None:
        """The job's PipelineRun from the API (None when there is none, or it is no job's)."""
        if not is_dns1123_label(name):  # no API call for junk ids
            return None
        try:
            run = await self.kube.get(PIPELINERUNS, self.namespace, name)
        except NotFound:
            return None
        return run if is_job_run(run) else None

    async def _run(self, job_id: str) -> dict[str, Any] | None:
        """The job's PipelineRun: from the cache, else (a job this replica has not seen yet)
        from the API."""
        run = self.runs.objects.get(job_id)
        if run is None:
            run = await self._fetch(job_id)
            if run is not None:
                self.runs.put(run)
        return run

    def _taskruns(self, name: str) -> list[dict[str, Any]]:
        return [
            tr
            for tr in self.taskruns.objects.values()
            if _labels(tr).get(pr.LABEL_PIPELINERUN) == name
        ]

    async def _configmap(self, job_id: str) -> dict[str, str] | None:
        try:
            cm = await self.kube.get(CONFIGMAPS, self.namespace, pr.ir_configmap_name(job_id))
        except NotFound:
            return None
        data: dict[str, str] = cm.get("data") or {}
        return data

    async def _create_part(self, resource: Resource, body: dict[str, Any]) -> None:
        """Create the ConfigMap or the Secret; one that already exists (a replayed start) is
        kept."""
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

    async def _delete_part(self, resource: Resource, name: str) -> None:
        try:
            await self.kube.delete(resource, self.namespace, name)
        except KubeError as exc:
            log.warning("cleanup failed", object=f"{resource.plural}/{name}", error=str(exc))

    # -- JobStore: start ---------------------------------------------------------------------

    def new_id(self, idempotency_key: str | None) -> str:
        if idempotency_key is None:
            return new_job_id()
        return idempotent_job_id(idempotency_key, self.namespace)

    async def idempotency(self, key: str) -> tuple[str, str] | None:
        job_id = idempotent_job_id(key, self.namespace)
        run = await self._run(job_id)
        if run is None:
            return None
        annotations = (run.get("metadata") or {}).get("annotations") or {}
        return str(annotations.get(pr.ANN_BODY_HASH) or ""), job_id

    async def create(
        self,
        job: JobRecord,
        bundle: JobBundle,
        event: EventPublic,
        *,
        values: Mapping[str, Any],
        idempotency: tuple[str, str] | None = None,
    ) -> JobRecord:
        """Create the IR ConfigMap, the callback-token Secret and the PipelineRun (Tekton starts
        it), then make the first two owned by the run."""
        job_id, s = job.id, self.settings
        key, digest = idempotency if idempotency is not None else (None, None)
        services, flows = pr.endpoints(values, job_id=job_id, namespace=self.namespace)
        job = with_endpoints(job, services=services, flows=flows)  # shown while it runs
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
                    flows=flows_doc(job),
                ),
                idempotency_key=key,
            )
        )
        configmap = pr.build_ir_configmap(
            job_id=job_id,
            pipeline=job.pipeline,
            namespace=self.namespace,
            bundle_json=bundle.model_dump_json(),
            values_json=orjson.dumps(values).decode(),
        )
        secret = pr.build_callback_secret(
            job_id=job_id,
            pipeline=job.pipeline,
            namespace=self.namespace,
            token=callback_token(s.secret_bytes(), job_id),
        )
        await self._create_part(CONFIGMAPS, configmap)
        await self._create_part(SECRETS, secret)
        try:
            created = await self.kube.create(PIPELINERUNS, self.namespace, run)
        except Conflict as exc:
            if key is not None:
                raise DuplicateKey(str(exc)) from exc
            raise
        except KubeError:
            await self._delete_part(CONFIGMAPS, pr.ir_configmap_name(job_id))
            await self._delete_part(SECRETS, pr.callback_secret_name(job_id))
            raise
        if not (created.get("metadata") or {}).get("uid"):
            created = await self._fetch(job_id) or created or run  # an answer without the object
        self.runs.put(created)
        await self._own(CONFIGMAPS, pr.ir_configmap_name(job_id), created)
        await self._own(SECRETS, pr.callback_secret_name(job_id), created)
        return self._record(created, [])

    # -- JobStore: reading -------------------------------------------------------------------

    def _record(self, run: Mapping[str, Any], taskruns: Iterable[Mapping[str, Any]]) -> JobRecord:
        """The job of a PipelineRun (pure mapping via `tekton.status`), memoised while neither
        the run nor its TaskRuns change."""
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
                    log_tail=st.failed_log,  # the failing container's, read by the task
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
            backend=run_info(self.namespace, name),
            outcome=OUTCOME_STATE.get(st.outcome or ""),
            failed_task=st.failed_task,
            failed_part=part,
        )
        record = settle(record)
        self._memo[name] = (memo_key, record)
        return record

    async def get(self, job_id: str) -> JobRecord | None:
        run = await self._run(job_id)
        return None if run is None else self._record(run, self._taskruns(job_id))

    async def get_public(self, job_id: str) -> bytes | None:
        job = await self.get(job_id)
        return None if job is None else job.public().model_dump_json().encode()

    def _all(self) -> list[JobRecord]:
        by_run: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        for tr in self.taskruns.objects.values():
            by_run[_labels(tr).get(pr.LABEL_PIPELINERUN, "")].append(tr)
        for gone in self._memo.keys() - self.runs.objects.keys():
            del self._memo[gone]
        return [self._record(run, by_run.get(name, [])) for name, run in self.runs.objects.items()]

    async def list_public(self, query: JobQuery) -> bytes:
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
        items = [job.public() for _, job in page]
        return JobsPublic(items=items, next=nxt).model_dump_json().encode()

    async def count_by_state(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self._all():
            counts[str(job.state)] = counts.get(str(job.state), 0) + 1
        return counts

    async def unfinished(self) -> list[JobRecord]:
        jobs = [job for job in self._all() if not job.state.finished]
        return sorted(jobs, key=lambda job: job.created_at)

    async def bundle(self, job_id: str) -> JobBundle | None:
        data = await self._configmap(job_id)
        if data is None or pr.IR_KEY not in data:
            return None
        return JobBundle.model_validate_json(data[pr.IR_KEY])

    async def values(self, job_id: str) -> dict[str, Any] | None:
        """The values kept in the IR ConfigMap; None for a job started without them (by an
        earlier version, or too large to share the ConfigMap with its bundle)."""
        data = await self._configmap(job_id)
        if data is None or pr.VALUES_KEY not in data:
            return None
        values: dict[str, Any] = orjson.loads(data[pr.VALUES_KEY])
        return values

    async def save_values(self, job_id: str, values: Mapping[str, Any]) -> None:
        """Nothing: the IR ConfigMap is immutable (the job service renders such a job's values
        from its bundle when asked)."""

    async def events(self, job_id: str) -> list[EventPublic]:
        """The states the job went through, from the objects' timestamps (`tekton.status`)."""
        run = await self._run(job_id)
        if run is None:
            return []
        return [
            EventPublic(
                at=e.at, state=State(e.state), task=e.task, reason=e.reason, message=e.message
            )
            for e in job_status(run, self._taskruns(job_id)).history
        ]

    async def problems(self) -> list[str]:
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

    # -- JobStore: changes -------------------------------------------------------------------

    async def update(self, job_id: str, change: Change) -> tuple[JobRecord, JobRecord | None]:
        """Read the run fresh, apply `change`, merge-patch what it changed with a
        resourceVersion precondition (another replica may write the same annotations): on 409
        read again and apply again."""
        for _ in range(CONFLICTS):
            run = await self._fetch(job_id)
            if run is None:
                raise JobNotFound(job_id)
            taskruns = self._taskruns(job_id)
            before = self._record(run, taskruns)
            write = change(before)
            if write is None:
                return before, None
            annotations = annotations_of(
                before, write.job, annotations=(run.get("metadata") or {}).get("annotations") or {}
            )
            if not annotations:
                return before, before
            meta: dict[str, Any] = {"annotations": annotations}
            version = (run.get("metadata") or {}).get("resourceVersion")
            if version:
                meta["resourceVersion"] = version
            try:
                patched = await self.kube.patch(
                    PIPELINERUNS, self.namespace, job_id, {"metadata": meta}
                )
            except Conflict:
                continue
            self.runs.put(patched)
            return before, self._record(patched, taskruns)
        raise StoreError(f"job {job_id}: the PipelineRun kept changing under {CONFLICTS} writes")
