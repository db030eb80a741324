"""A fake apiserver (kmock) and a Tekton controller simulator that follows TEKTON.md.

`ApiServer` is kmock's `KubernetesEmulator` plus what the scheduler needs of a real apiserver:
`uid`, `creationTimestamp`, `generation` and `resourceVersion` on create, `resourceVersion`
bumped on every patch with the optimistic-concurrency check (409 when a patch names a stale
`metadata.resourceVersion`), and `labelSelector` applied to lists and watches (kmock ignores
it). `TektonSim` moves PipelineRuns and TaskRuns stored there through the status sequences of
TEKTON.md, writing through the API (so watches see every change); tests call its steps.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import kmock
from kmock._internal import rendering

NS = "jobs"
PIPELINERUNS = kmock.resource("tekton.dev", "v1", "pipelineruns")
TASKRUNS = kmock.resource("tekton.dev", "v1", "taskruns")
CONFIGMAPS = kmock.resource("", "v1", "configmaps")
SECRETS = kmock.resource("", "v1", "secrets")
SIM_AGENT = "tekton-sim"


def _selected(obj: Mapping[str, Any], selector: str | None) -> bool:
    """Whether `obj`'s labels match a label selector of `k=v`, `k!=v` and `k` terms."""
    if not selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in selector.split(","):
        term = term.strip()
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.rstrip("=")) != value:
                return False
        elif term and term not in labels:
            return False
    return True


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    """kmock with uids, timestamps, resourceVersions (and their conflicts) and selectors."""

    _versions: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)

    async def _handle(self, request: rendering.Request) -> Any:
        if request.resource is not None and isinstance(request.data, dict):
            # stamped in place: `request.body` keeps the bytes the client sent (see `sent`)
            meta = request.data.setdefault("metadata", {})
            if request.action == kmock.action.CREATE:
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", now())
                meta["generation"] = 1
                meta["resourceVersion"] = str(next(self._versions))
            elif request.action == kmock.action.UPDATE and request.name is not None:
                key = (request.resource, request.namespace, request.name)
                if key in self.objects and not self.objects[key].deleted:
                    stored = dict(self.objects[key].get("metadata") or {})
                    wanted = meta.get("resourceVersion")
                    if wanted is not None and wanted != stored.get("resourceVersion"):
                        raise kmock_conflict()
                meta["resourceVersion"] = str(next(self._versions))
        return await super()._handle(request)

    async def _serve_list(self, request: rendering.Request) -> Any:
        result: Any = await super()._serve_list(request)
        selector = request.params.get("labelSelector")
        result["items"] = [o for o in result["items"] if _selected(o, selector)]
        result["metadata"] = {"resourceVersion": "0"}
        return result

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        selector = request.params.get("labelSelector")
        async for event in super()._serve_watch(request):
            if isinstance(event, dict) and not _selected(event.get("object") or {}, selector):
                continue
            yield event


def sent(request: rendering.Request) -> Any:
    """The JSON body a client sent (`request.data` may carry what the server stamped)."""
    return json.loads(request.body)


def kmock_conflict() -> Exception:
    from kmock._internal.k8s import KubernetesObjectConflictError

    return KubernetesObjectConflictError(
        reason="Conflict", message="the object has been modified; please apply your changes"
    )


_clock = itertools.count()
_BASE = datetime(2026, 1, 1, tzinfo=UTC)


def now() -> str:
    """Strictly increasing timestamps (one second apart), RFC 3339 with Z."""
    return (_BASE + timedelta(seconds=next(_clock))).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": "Succeeded",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now(),
    }


def _cond(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Succeeded":
            return dict(c)
    return None


def _status(obj: Mapping[str, Any]) -> str | None:
    c = _cond(obj)
    return None if c is None else str(c["status"])


def _finished(obj: Mapping[str, Any]) -> bool:
    c = _cond(obj)
    return c is not None and c["status"] in ("True", "False")


class TektonSim:
    """The Tekton controller's visible effects, step by step (TEKTON.md)."""

    def __init__(self, api: ApiServer, namespace: str = NS) -> None:
        self.api = api
        self.ns = namespace

    # -- reading and writing through the API ---------------------------------------------------

    def run(self, name: str) -> dict[str, Any]:
        return _plain(self.api.objects[PIPELINERUNS, self.ns, name])

    def taskruns(self, name: str) -> dict[str, dict[str, Any]]:
        """The run's TaskRuns by pipeline task."""
        out = {}
        for (res, ns, _), obj in list(self.api.objects.items()):
            if res != TASKRUNS or ns != self.ns or obj.deleted:
                continue
            plain = _plain(obj)
            labels = plain["metadata"].get("labels") or {}
            if labels.get("tekton.dev/pipelineRun") == name:
                out[labels["tekton.dev/pipelineTask"]] = plain
        return out

    async def _patch(self, plural: str, name: str, body: dict[str, Any]) -> None:
        url = f"/apis/tekton.dev/v1/namespaces/{self.ns}/{plural}/{name}"
        response = await self.api.patch(
            url,
            json=body,
            headers={"Content-Type": "application/merge-patch+json", "User-Agent": SIM_AGENT},
        )
        assert response.status == 200, await response.text()

    async def _create_taskrun(self, body: dict[str, Any]) -> None:
        url = f"/apis/tekton.dev/v1/namespaces/{self.ns}/taskruns"
        response = await self.api.post(url, json=body, headers={"User-Agent": SIM_AGENT})
        assert response.status in (200, 201), await response.text()

    async def _run_status(self, name: str, **fields: Any) -> None:
        await self._patch("pipelineruns", name, {"status": fields})

    # -- steps ---------------------------------------------------------------------------------

    async def start(self, name: str) -> None:
        """The controller picks the run up: Unknown/Running, install TaskRun created."""
        await self._run_status(
            name,
            startTime=now(),
            conditions=[
                condition(
                    "Unknown", "Running", "Tasks Completed: 0 (Failed: 0, Cancelled 0), Skipped: 0"
                )
            ],
        )
        await self.start_task(name, "install")

    async def start_task(self, name: str, task: str) -> None:
        """Create the TaskRun of `task` (hashed name, as Tekton may), running."""
        tr_name = f"{name}-{task}-{uuid.uuid4().hex[:5]}"
        member = "finally" if task == "uninstall" else "tasks"
        await self._create_taskrun(
            {
                "apiVersion": "tekton.dev/v1",
                "kind": "TaskRun",
                "metadata": {
                    "name": tr_name,
                    "namespace": self.ns,
                    "labels": {
                        "tekton.dev/pipelineRun": name,
                        "tekton.dev/pipelineTask": task,
                        "tekton.dev/memberOf": member,
                        "tekton.dev/pipeline": "tekscore-scoring-job",
                    },
                },
                "spec": {"taskRef": {"name": f"tekscore-{task}", "kind": "Task"}},
                "status": {
                    "podName": f"{tr_name}-pod",
                    "startTime": now(),
                    "conditions": [condition("Unknown", "Running", "Not all Steps have completed")],
                },
            }
        )
        refs = list((self.run(name).get("status") or {}).get("childReferences") or [])
        refs.append(
            {
                "apiVersion": "tekton.dev/v1",
                "kind": "TaskRun",
                "name": tr_name,
                "pipelineTaskName": task,
            }
        )
        await self._run_status(name, childReferences=refs)
        if task == "uninstall":
            await self._run_status(name, finallyStartTime=now())

    async def finish_task(self, name: str, task: str) -> None:
        """A TaskRun ends by itself with True/Succeeded; then the controller reacts
        (`advance`). Failures, cancels and timeouts of the real controller are tested on the
        test cluster (tests/cluster)."""
        tr = self.taskruns(name)[task]
        cond = condition("True", "Succeeded", "All Steps have completed executing")
        await self._patch(
            "taskruns",
            tr["metadata"]["name"],
            {"status": {"conditions": [cond], "completionTime": now()}},
        )
        await self.advance(name)

    async def advance(self, name: str) -> None:
        """One reconcile of the controller, after anything changed (TEKTON.md):
        cancel requests on TaskRuns and on the run, the DAG (install -> wait), finally, and
        the run's final condition."""
        run = self.run(name)
        if _finished(run):
            return
        spec_status = (run.get("spec") or {}).get("status")
        trs = self.taskruns(name)
        # a TaskRun cancelled by patch ends False/TaskRunCancelled
        for tr in trs.values():
            tr_spec = tr.get("spec") or {}
            if tr_spec.get("status") == "TaskRunCancelled" and not _finished(tr):
                await self._cancel_taskrun(tr, tr_spec.get("statusMessage") or "TaskRun cancelled")
        # cancel of the run: cancel running TaskRuns, then run finally
        if spec_status in ("CancelledRunFinally", "Cancelled"):
            for task in ("install", "wait"):
                running = trs.get(task)
                if running is not None and not _finished(running):
                    await self._patch(
                        "taskruns",
                        running["metadata"]["name"],
                        {"spec": {"status": "TaskRunCancelled"}},
                    )
                    await self._cancel_taskrun(
                        running,
                        "TaskRun cancelled as the PipelineRun it belongs to has been cancelled.",
                    )
        trs = self.taskruns(name)
        dag = [trs[t] for t in ("install", "wait") if t in trs]
        dag_stopped = any(_status(t) == "False" for t in dag)
        cancelled_run = spec_status in ("CancelledRunFinally", "Cancelled")
        if (
            "install" in trs
            and _status(trs["install"]) == "True"
            and "wait" not in trs
            and not (dag_stopped or cancelled_run)
        ):
            await self.start_task(name, "wait")
            return
        dag_done = (
            dag_stopped or cancelled_run or ("wait" in trs and _finished(trs["wait"]))
        ) and all(_finished(t) for t in dag)
        if not dag_done:
            return
        if "uninstall" not in trs:
            if spec_status == "Cancelled":  # finally tasks NOT run
                await self._end(name)
                return
            reason = (
                "CancelledRunningFinally"
                if cancelled_run
                else ("PipelineRunStopping" if dag_stopped else "Running")
            )
            await self._run_status(
                name,
                conditions=[
                    condition(
                        "Unknown", reason, "Tasks Completed: 1 (Failed: 0, Cancelled 1), Skipped: 0"
                    )
                ],
            )
            await self.start_task(name, "uninstall")
            return
        if _finished(trs["uninstall"]):
            await self._end(name)

    def reconcile_begins(self, name: str) -> dict[str, str]:
        """The run's annotations as the controller reads them when a reconcile begins (its
        lister's copy); `reconcile_ends` takes them."""
        return dict(self.run(name)["metadata"].get("annotations") or {})

    async def reconcile_ends(self, name: str, began: Mapping[str, str]) -> None:
        """The end of that reconcile (`updateLabelsAndAnnotations` of tektoncd/pipeline): when
        the annotations changed meanwhile, an update at the newest resourceVersion of their
        union with those it `began` with, the latter's values winning (tektoncd/pipeline#5297):
        a value someone changed meanwhile is put back, a key someone added stays."""
        run = self.run(name)
        if (run["metadata"].get("annotations") or {}) == began:
            return
        version = run["metadata"]["resourceVersion"]
        await self._patch(
            "pipelineruns",
            name,
            {"metadata": {"resourceVersion": version, "annotations": dict(began)}},
        )

    async def _cancel_taskrun(self, tr: Mapping[str, Any], message: str) -> None:
        await self._patch(
            "taskruns",
            tr["metadata"]["name"],
            {
                "status": {
                    "conditions": [condition("False", "TaskRunCancelled", message)],
                    "completionTime": now(),
                }
            },
        )

    async def _end(self, name: str) -> None:
        """The run's final condition: Failed wins over Cancelled; else Succeeded."""
        run = self.run(name)
        trs = self.taskruns(name)
        conds = [c for c in (_cond(t) for t in trs.values()) if c is not None]
        failed = [c for c in conds if c["status"] == "False" and c["reason"] != "TaskRunCancelled"]
        cancelled = [c for c in conds if c["reason"] == "TaskRunCancelled"] or (
            run.get("spec") or {}
        ).get("status")
        counts = f"Tasks Completed: {len(conds)} (Failed: {len(failed)}, Cancelled {len(cancelled or [])}), Skipped: 0"
        if failed:
            cond = condition("False", "Failed", counts)
        elif cancelled:
            cond = condition("False", "Cancelled", f'PipelineRun "{name}" was cancelled')
        else:
            cond = condition("True", "Succeeded", counts)
        await self._run_status(name, conditions=[cond], completionTime=now())


def _plain(obj: Any) -> dict[str, Any]:
    """A stored kmock object as plain nested dicts."""
    plain: dict[str, Any] = json.loads(
        json.dumps(obj.raw if hasattr(obj, "raw") else dict(obj), default=_unwrap)
    )
    return plain


def _unwrap(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(type(value))
