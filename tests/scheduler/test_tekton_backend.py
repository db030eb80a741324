"""The Tekton backend through the real API: `create_app(Settings(backend="tekton"))` over ASGI,
kmock as the apiserver (`tekton_sim.ApiServer`) and `tekton_sim.TektonSim` moving PipelineRuns
and TaskRuns through the status sequences of TEKTON.md.

Checks what the real controller cannot show (tests/cluster runs the same jobs on a real
apiserver and Tekton controller: failures, cancels, the timeout): the exact requests the
scheduler sends (bodies, order: the outcome before the wait cancel, merge-patch content type, no
second patch on a repeated cancel) on success and cancel, and completion before the wait TaskRun
exists (the fallback needs the completion inside a window of a few hundred milliseconds). Also: the objects a start creates (PipelineRun valid against the
Tekton CRD schema, IR ConfigMap and callback Secret owned by it), idempotent start, a second
replica seeing the same jobs, list filters and cursor pagination. (The watch-fed cache's list,
watch and re-list on 410 Gone are tested with the one watcher in tests/tekton/test_kube.py.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import kmock
import pytest
import yaml

from scheduler.auth import callback_token
from scheduler.config import Settings
from scheduler.main import create_app
from tests.charts.helpers import tekton_errors
from tests.cluster.jobs import latest_flows
from tests.conftest import IRIS
from tests.scheduler.tekton_sim import (
    CONFIGMAPS,
    NS,
    PIPELINERUNS,
    SECRETS,
    SIM_AGENT,
    TASKRUNS,
    ApiServer,
    TektonSim,
    sent,
)

pytestmark = [pytest.mark.timeout(30), pytest.mark.filterwarnings("error")]

TOKEN = "tekton-api-token"
SECRET = "tekton-test-secret"
MERGE = "application/merge-patch+json"


def iris_request(**extra: Any) -> dict[str, Any]:
    files = {str(IRIS / n): (IRIS / n).read_text() for n in ("model.yaml", "batch.yaml")}
    return {"pipeline": {"files": files}, **extra}


@pytest.fixture
async def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ApiServer]:
    async with ApiServer() as server, kmock.Server(server) as http:
        for resource in (
            "tekton.dev/v1/pipelineruns",
            "tekton.dev/v1/taskruns",
            "v1/configmaps",
            "v1/secrets",
        ):
            server.resources[resource] = kmock.ResourceInfo()
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "kmock", "cluster": {"server": f"http://{http.host}:{http.port}"}}
            ],
            "users": [{"name": "kmock", "user": {"token": "kmock-token"}}],
            "contexts": [
                {"name": "kmock", "context": {"cluster": "kmock", "user": "kmock", "namespace": NS}}
            ],
            "current-context": "kmock",
        }
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig))
        monkeypatch.setenv("KUBECONFIG", str(path))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        yield server


@pytest.fixture
def sim(api: ApiServer) -> TektonSim:
    return TektonSim(api)


@asynccontextmanager
async def replica(
    tmp_path: Path, name: str = "a", **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """One scheduler replica (its own app, cache and watches) as an httpx client."""
    app = create_app(
        Settings(
            backend="tekton",
            home=tmp_path / name,
            namespace=NS,
            secret=SECRET,
            api_tokens=TOKEN,
            public_url="http://tekscore.tekscore.svc:8000",
            wait_taskrun_timeout=settings.pop("wait_taskrun_timeout", 1.0),
            **settings,
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://test",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as http:
            yield http


@pytest.fixture
async def client(tmp_path: Path, api: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with replica(tmp_path) as http:
        yield http


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll an async `check` until it returns a truthy value (bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout}s")
        await asyncio.sleep(0.02)


async def wait_state(
    http: httpx.AsyncClient, job_id: str, state: str, task: str | None = "any"
) -> dict[str, Any]:
    last: dict[str, Any] = {}

    async def check() -> dict[str, Any] | None:
        nonlocal last
        response = await http.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        last = response.json()
        if last["state"] == state and (task == "any" or last["task"] == task):
            return last
        return None

    try:
        return await eventually(check)
    except AssertionError:
        raise AssertionError(f"job {job_id} not {state}/{task}: {last}") from None


def scheduler_requests(api: ApiServer) -> list[kmock.Request]:
    """What the scheduler sent (not the simulator's writes, not watches)."""
    return [
        r
        for r in api
        if r.headers.get("User-Agent") != SIM_AGENT and r.action != kmock.action.WATCH
    ]


def patches(api: ApiServer, resource: kmock.resource | None = None) -> list[kmock.Request]:
    return [
        r
        for r in scheduler_requests(api)
        if r.method == kmock.method.PATCH and (resource is None or r.resource == resource)
    ]


async def start(http: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    response = await http.post("/api/v1/jobs", json=iris_request(**extra))
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def callback(job_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {callback_token(SECRET.encode(), job_id)}"}


async def complete(http: httpx.AsyncClient, job_id: str, **counts: Any) -> httpx.Response:
    body = {"records_in": 150, "records_out": 150, "records_failed": 0, **counts}
    return await http.post(
        f"/api/v1/jobs/{job_id}/flows/classify/complete", json=body, headers=callback(job_id)
    )


async def event_states(http: httpx.AsyncClient, job_id: str) -> list[tuple[str, str | None]]:
    response = await http.get(f"/api/v1/jobs/{job_id}/events")
    assert response.status_code == 200, response.text
    return [(e["state"], e["task"]) for e in response.json()]


# -- start ---------------------------------------------------------------------------------------


async def test_start_creates_the_run_configmap_and_secret(
    client: httpx.AsyncClient, api: ApiServer
) -> None:
    job = await start(client, name="nightly iris", labels={"team": "risk"})
    job_id = job["id"]
    assert job["state"] == "PENDING" and job["task"] is None
    assert job["backend"] == {
        "kind": "tekton",
        "namespace": NS,
        "pipelinerun": job_id,
        "release": job_id,
    }
    assert job["flows"]["classify"]["mode"] == "batch"

    run = dict(api.objects[PIPELINERUNS, NS, job_id].raw)
    assert tekton_errors(run) == []
    assert run["spec"]["pipelineRef"] == {"name": "tekscore-scoring-job"}
    params = {p["name"]: p["value"] for p in run["spec"]["params"]}
    assert params == {
        "job-id": job_id,
        "release": job_id,
        "namespace": NS,
        "scheduler-url": "http://tekscore.tekscore.svc:8000",
        "chart": "/app/charts/scoring-pipeline",
    }
    assert run["spec"]["taskRunTemplate"] == {"serviceAccountName": "tekscore-task"}
    assert run["spec"]["timeouts"] == {"pipeline": "0", "tasks": "0", "finally": "0"}
    assert run["spec"]["workspaces"] == [{"name": "ir", "configMap": {"name": f"{job_id}-ir"}}]
    labels = run["metadata"]["labels"]
    assert labels == {
        "tekscore.dev/job": job_id,
        "tekscore.dev/pipeline": "iris-batch",
        "app.kubernetes.io/managed-by": "tekscore",
    }
    annotations = run["metadata"]["annotations"]
    assert annotations["tekscore.dev/name"] == "nightly iris"
    assert json.loads(annotations["tekscore.dev/labels"]) == {"team": "risk"}
    assert annotations["tekscore.dev/content-hash"] == job["content_hash"]

    uid = run["metadata"]["uid"]
    cm = dict(api.objects[CONFIGMAPS, NS, f"{job_id}-ir"].raw)
    secret = dict(api.objects[SECRETS, NS, f"{job_id}-callback"].raw)
    for obj in (cm, secret):
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "tekton.dev/v1",
            "kind": "PipelineRun",
            "name": job_id,
            "uid": uid,
            "controller": False,
            "blockOwnerDeletion": False,
        }
    token = callback_token(SECRET.encode(), job_id)
    assert secret["stringData"] == {"token": token}
    assert json.loads(cm["data"]["job.json"])["job_id"] == job_id
    everything_else = json.dumps([run, cm]) + "".join(
        r.text for r in scheduler_requests(api) if r.resource != SECRETS
    )
    assert token not in everything_else and SECRET not in everything_else

    # kubernetes 37 returns None for kmock's 200 on create: the run was read back for its uid
    creates = [r for r in scheduler_requests(api) if r.action == kmock.action.CREATE]
    assert [r.resource for r in creates] == [CONFIGMAPS, SECRETS, PIPELINERUNS]
    owner_patches = patches(api)
    assert {r.resource for r in owner_patches} == {CONFIGMAPS, SECRETS}
    assert all(r.headers["Content-Type"] == MERGE for r in owner_patches)

    # what the install task downloads, and the values
    bundle = await client.get(f"/api/v1/jobs/{job_id}/ir", headers=callback(job_id))
    assert bundle.status_code == 200 and bundle.json()["job_id"] == job_id
    values = await client.get(f"/api/v1/jobs/{job_id}/values")
    assert values.status_code == 200 and values.json()["job"]["id"] == job_id
    assert (await client.get("/api/v1/jobs/j-unknown000")).status_code == 404
    assert (await client.get("/readyz")).json() == {"status": "ok"}
    assert (await client.get(f"/api/v1/jobs/{job_id}/logs")).text == ""


async def test_invalid_ir_is_422_and_creates_nothing(
    client: httpx.AsyncClient, api: ApiServer
) -> None:
    bad = {
        "pipeline": {
            "apiVersion": "tekscore.dev/v1",
            "kind": "ScoringPipeline",
            "metadata": {"name": "x"},
            "spec": {"scoringFlows": ["missing"]},
        }
    }
    response = await client.post("/api/v1/jobs", json=bad)
    assert response.status_code == 422, response.text
    assert response.json()["errors"]
    assert not [r for r in scheduler_requests(api) if r.action == kmock.action.CREATE]


async def test_idempotent_start_and_a_second_replica(
    tmp_path: Path, api: ApiServer, sim: TektonSim
) -> None:
    async with replica(tmp_path, "a") as a, replica(tmp_path, "b") as b:
        first = await a.post(
            "/api/v1/jobs", json=iris_request(), headers={"Idempotency-Key": "k-1"}
        )
        assert first.status_code == 201, first.text
        job_id = first.json()["id"]
        again = await b.post(
            "/api/v1/jobs", json=iris_request(), headers={"Idempotency-Key": "k-1"}
        )
        assert again.status_code == 200 and again.json()["id"] == job_id
        other = await b.post(
            "/api/v1/jobs", json=iris_request(name="other"), headers={"Idempotency-Key": "k-1"}
        )
        assert other.status_code == 409, other.text
        run = dict(api.objects[PIPELINERUNS, NS, job_id].raw)
        assert "tekscore.dev/idempotency" in run["metadata"]["labels"]
        assert (
            len(
                [
                    r
                    for r in scheduler_requests(api)
                    if r.action == kmock.action.CREATE and r.resource == PIPELINERUNS
                ]
            )
            == 1
        )

        await sim.start(job_id)
        await sim.finish_task(job_id, "install")
        for http in (a, b):
            await wait_state(http, job_id, "RUNNING", "wait")
        # a report through b is seen by a: the annotation is the only record
        progress = await b.post(
            f"/api/v1/jobs/{job_id}/flows/classify/progress",
            json={"records_in": 10, "records_out": 9, "records_failed": 1},
            headers=callback(job_id),
        )
        assert progress.status_code == 202, progress.text

        async def a_sees_counts() -> bool:
            job = (await a.get(f"/api/v1/jobs/{job_id}")).json()
            return bool(job["flows"]["classify"]["records_in"] == 10)

        await eventually(a_sees_counts)
        assert (await complete(a, job_id)).status_code == 202
        await sim.advance(job_id)
        await sim.finish_task(job_id, "uninstall")
        for http in (a, b):
            job = await wait_state(http, job_id, "SUCCEEDED")
            assert job["flows"]["classify"]["state"] == "COMPLETED"
        assert await event_states(a, job_id) == await event_states(b, job_id)


# -- the scenarios of TEKTON.md -------------------------------------------------------------------


async def test_success(client: httpx.AsyncClient, api: ApiServer, sim: TektonSim) -> None:
    job_id = (await start(client))["id"]
    await sim.start(job_id)
    await wait_state(client, job_id, "INSTALLING", "install")
    await sim.finish_task(job_id, "install")
    await wait_state(client, job_id, "RUNNING", "wait")

    before = len(patches(api))
    response = await complete(client, job_id, records_out=149, records_failed=1)
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "STOPPING"
    new = patches(api)[before:]
    # flows annotation (with a resourceVersion precondition), outcome FIRST, then the wait cancel
    assert [r.resource for r in new] == [PIPELINERUNS, PIPELINERUNS, TASKRUNS]
    assert all(r.headers["Content-Type"] == MERGE for r in new)
    flows_patch, outcome_patch, cancel = new
    assert "resourceVersion" in sent(flows_patch)["metadata"]
    written = sent(flows_patch)["metadata"]["annotations"]
    # the flows' status as its next generation, the one of the start removed
    assert written["tekscore.dev/flows"] is None, written
    flows = json.loads(written["tekscore.dev/flows.1"])
    assert flows["flows"]["classify"]["state"] == "COMPLETED"
    assert sent(outcome_patch)["metadata"]["annotations"]["tekscore.dev/outcome"] == "succeeded"
    wait_tr = sim.taskruns(job_id)["wait"]["metadata"]["name"]
    assert cancel.name == wait_tr
    assert sent(cancel) == {
        "spec": {"status": "TaskRunCancelled", "statusMessage": "all batch flows completed"}
    }

    await sim.advance(job_id)  # wait TaskRun False/TaskRunCancelled, run PipelineRunStopping
    assert sim.run(job_id)["status"]["conditions"][0]["reason"] == "PipelineRunStopping"
    await wait_state(client, job_id, "STOPPING", "finally")
    await sim.finish_task(job_id, "uninstall")
    assert sim.run(job_id)["status"]["conditions"][0]["reason"] == "Cancelled"
    job = await wait_state(client, job_id, "SUCCEEDED", None)
    assert job["reason"] == "Completed" and job["finished_at"] is not None
    assert job["flows"]["classify"] | {"error": None} == {
        "mode": "batch",
        "state": "COMPLETED",
        "records_in": 150,
        "records_out": 149,
        "records_failed": 1,
        "records_filtered": 0,
        "shards": 1,
        "shards_done": 1,
        "error": None,
        "endpoint": None,
        "replicas": [
            {
                "index": 0,
                "pod": None,
                "state": "COMPLETED",
                "records_in": 150,
                "records_out": 149,
                "records_failed": 1,
                "records_filtered": 0,
                "error": None,
            }
        ],
    }
    assert await event_states(client, job_id) == [
        ("PENDING", None),
        ("INSTALLING", "install"),
        ("RUNNING", "wait"),
        ("STOPPING", "finally"),
        ("SUCCEEDED", None),
    ]
    cancel_finished = await client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert cancel_finished.status_code == 409 and cancel_finished.json()["state"] == "SUCCEEDED"
    listed = (await client.get("/api/v1/jobs", params={"state": "SUCCEEDED"})).json()
    assert [j["id"] for j in listed["items"]] == [job_id]
    metrics = (await client.get("/metrics")).text
    assert 'tekscore_jobs{state="SUCCEEDED"} 1.0' in metrics or "SUCCEEDED" in metrics


async def test_a_report_survives_tektons_write_back_of_the_annotations_a_reconcile_began_with(
    client: httpx.AsyncClient, sim: TektonSim
) -> None:
    """Tekton's reconciler writes back the annotation values it read when a reconcile began
    (tektoncd/pipeline#5297). Seen on the real controller: a shard's completion recorded
    meanwhile was undone, and the job waited for a shard that had completed."""
    job_id = (await start(client))["id"]
    await sim.start(job_id)
    await sim.finish_task(job_id, "install")
    await wait_state(client, job_id, "RUNNING", "wait")

    async def shard_done(shard: int) -> httpx.Response:
        body = {
            "records_in": 75,
            "records_out": 75,
            "records_failed": 0,
            "shard": shard,
            "shards": 2,
        }
        return await client.post(
            f"/api/v1/jobs/{job_id}/flows/classify/complete", json=body, headers=callback(job_id)
        )

    began = sim.reconcile_begins(job_id)
    first = await shard_done(0)
    assert first.status_code == 202, first.text
    assert first.json()["flows"]["classify"]["shards_done"] == 1
    await sim.reconcile_ends(job_id, began)  # the start's annotation put back beside the new

    second = await shard_done(1)
    assert second.status_code == 202, second.text
    job = second.json()
    assert job["state"] == "STOPPING", job  # both shards done: scoring is over
    flow = job["flows"]["classify"]
    assert (flow["shards_done"], flow["records_in"], flow["state"]) == (2, 150, "COMPLETED")
    # what an operator reads on the run: the highest generation, both shards in it
    rows = latest_flows(sim.run(job_id))["flows"]["classify"]["replicas"]
    assert [(r["index"], r["state"]) for r in rows] == [(0, "COMPLETED"), (1, "COMPLETED")]


@pytest.mark.parametrize("during", ["install", "wait"])
async def test_cancel(
    client: httpx.AsyncClient, api: ApiServer, sim: TektonSim, during: str
) -> None:
    job_id = (await start(client))["id"]
    await sim.start(job_id)
    if during == "wait":
        await sim.finish_task(job_id, "install")
    await wait_state(client, job_id, "INSTALLING" if during == "install" else "RUNNING", during)

    before = len(patches(api))
    response = await client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "STOPPING"
    outcome, cancel = patches(api)[before:]
    assert outcome.resource == cancel.resource == PIPELINERUNS
    assert outcome.headers["Content-Type"] == cancel.headers["Content-Type"] == MERGE
    assert sent(outcome)["metadata"]["annotations"]["tekscore.dev/outcome"] == "cancelled"
    assert sent(cancel) == {"spec": {"status": "CancelledRunFinally"}}
    again = await client.post(f"/api/v1/jobs/{job_id}/cancel")  # idempotent: no new patch
    assert again.status_code == 202 and len(patches(api)) == before + 2

    await sim.advance(job_id)
    assert sim.taskruns(job_id)[during]["status"]["conditions"][0]["reason"] == "TaskRunCancelled"
    assert sim.run(job_id)["status"]["conditions"][0]["reason"] == "CancelledRunningFinally"
    await wait_state(client, job_id, "STOPPING", "finally")
    await sim.finish_task(job_id, "uninstall")
    job = await wait_state(client, job_id, "CANCELLED", None)
    assert job["reason"] == "Cancelled"
    states = [s for s, _ in await event_states(client, job_id)]
    assert states == [
        "PENDING",
        "INSTALLING",
        *(["RUNNING"] if during == "wait" else []),
        "STOPPING",
        "CANCELLED",
    ]
    assert (await client.post(f"/api/v1/jobs/{job_id}/cancel")).status_code == 409


async def test_completion_before_the_wait_taskrun_exists(
    client: httpx.AsyncClient, api: ApiServer, sim: TektonSim
) -> None:
    job_id = (await start(client))["id"]
    await sim.start(job_id)
    await wait_state(client, job_id, "INSTALLING", "install")
    response = await complete(client, job_id)
    assert response.status_code == 202
    assert response.json()["state"] == "STOPPING"

    async def fell_back() -> bool:
        return (sim.run(job_id).get("spec") or {}).get("status") == "CancelledRunFinally"

    await eventually(fell_back, timeout=5)
    run_patches = patches(api, PIPELINERUNS)
    assert sent(run_patches[-2])["metadata"]["annotations"]["tekscore.dev/outcome"] == "succeeded"
    assert sent(run_patches[-1]) == {"spec": {"status": "CancelledRunFinally"}}
    assert not patches(api, TASKRUNS)
    await sim.advance(job_id)
    await sim.finish_task(job_id, "uninstall")
    job = await wait_state(client, job_id, "SUCCEEDED", None)
    assert job["reason"] == "Completed"


async def test_timeouts_setting(tmp_path: Path, api: ApiServer) -> None:
    async with replica(tmp_path, pipeline_timeout=7200, finally_timeout=600) as http:
        job_id = (await start(http))["id"]
    run = dict(api.objects[PIPELINERUNS, NS, job_id].raw)
    assert run["spec"]["timeouts"] == {"pipeline": "2h0m0s", "tasks": "1h50m0s", "finally": "10m0s"}
    assert tekton_errors(run) == []


# -- list ------------------------------------------------------------------------------------------


async def test_list_filters_and_cursor(client: httpx.AsyncClient, sim: TektonSim) -> None:
    ids = [(await start(client, labels={"n": str(i)}))["id"] for i in range(3)]
    await sim.start(ids[0])

    async def listed(**params: Any) -> dict[str, Any]:
        response = await client.get("/api/v1/jobs", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    await wait_state(client, ids[0], "INSTALLING", "install")
    page = await listed(limit=2)
    assert [j["id"] for j in page["items"]] == [ids[2], ids[1]]
    rest = await listed(limit=2, cursor=page["next"])
    assert [j["id"] for j in rest["items"]] == [ids[0]] and rest["next"] is None
    assert [j["id"] for j in (await listed(label="n=1"))["items"]] == [ids[1]]
    assert [j["id"] for j in (await listed(state="INSTALLING"))["items"]] == [ids[0]]
    assert (await listed(pipeline="nope"))["items"] == []
    assert (await client.get("/api/v1/jobs", params={"cursor": "!!"})).status_code == 422
