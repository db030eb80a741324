"""The one Kubernetes client (`tekton.kube`): answers become the typed errors of its tree (404
NotFound, 409 Conflict, 5xx ServerError, no answer Unreachable, each chained to what caused it),
transient ones are retried with the one policy and then raised; `Watcher` lists, watches from
the list's resourceVersion, resumes a watch the server ended from the last version seen (a
bookmark's too), lists again on 410 Gone, follows real changes through kmock, and
`run_forever` records an error and recovers from it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes.aio import client

from common.ports import free_port
from tekton.kube import (
    PODS,
    SECRETS,
    APIError,
    ConfigError,
    Conflict,
    Gone,
    Kube,
    NotFound,
    ServerError,
    Transient,
    Unreachable,
    Watcher,
    api_error,
    connect,
    is_transient,
)
from tests.tekton import conftest_k8s
from tests.tekton.conftest_k8s import NS, FakeCluster, container_status, pod
from tests.tekton.conftest_k8s import PODS as POD_RESOURCE
from tests.tekton.conftest_k8s import SECRETS as SECRET_RESOURCE

cluster = conftest_k8s.cluster


def secret(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}}


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------------- errors


async def test_answers_become_typed_errors(cluster: FakeCluster) -> None:
    kube = cluster.kube
    with pytest.raises(NotFound) as missing:
        await kube.get(SECRETS, NS, "nope")
    assert missing.value.status == 404 and not is_transient(missing.value)
    assert "GET /api/v1/namespaces/scoring-jobs/secrets/nope" in str(missing.value)

    created = await kube.create(SECRETS, NS, secret("s"))
    assert created["metadata"]["name"] == "s"
    with pytest.raises(Conflict) as taken:
        await kube.create(SECRETS, NS, secret("s"))
    assert isinstance(taken.value, APIError) and taken.value.status == 409

    await kube.delete(SECRETS, NS, "s")
    with pytest.raises(NotFound):
        await kube.delete(SECRETS, NS, "s")


def test_the_tree() -> None:
    for status, cls in ((410, Gone), (503, ServerError), (500, ServerError), (409, Conflict)):
        assert type(api_error(status, "m")) is cls
    assert is_transient(api_error(429, "slow down")) and is_transient(api_error(502, "m"))
    assert not is_transient(api_error(403, "no")) and not is_transient(api_error(422, "bad"))


async def test_transient_answers_are_retried_then_raised(cluster: FakeCluster) -> None:
    (
        cluster.server["list", POD_RESOURCE][:2]
        << 500
        << {"kind": "Status", "code": 500, "message": "etcd"}
    )
    cluster.add(POD_RESOURCE, pod("p", component="scoring-flow", statuses=[container_status("c")]))
    items, _ = await cluster.kube.retrying(attempts=3, first=0.01).list(PODS, NS)
    assert [i["metadata"]["name"] for i in items] == ["p"]
    assert len(cluster.server["list", POD_RESOURCE]) == 3

    (
        cluster.server["list", SECRET_RESOURCE]
        << 503
        << {"kind": "Status", "code": 503, "message": "down"}
    )
    with pytest.raises(ServerError) as info:
        await cluster.kube.retrying(attempts=3, first=0.01).list(SECRETS, NS)
    assert info.value.status == 503 and info.value.message == "down"
    assert isinstance(info.value, Transient)
    assert len(cluster.server["list", SECRET_RESOURCE]) == 3


async def test_no_answer_is_unreachable_and_chained() -> None:
    configuration = client.Configuration(host=f"http://127.0.0.1:{free_port()}")
    async with Kube(client.ApiClient(configuration)).retrying(attempts=2, first=0.01) as kube:
        with pytest.raises(Unreachable) as info:
            await kube.get(SECRETS, NS, "s")
    assert isinstance(info.value.__cause__, aiohttp.ClientError)


async def test_connect_without_any_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(ConfigError):
        await connect()


# ---------------------------------------------------------------------------------- watcher


class ScriptedKube:
    """Stands in for `Kube` at our own boundary: lists and watches answered from scripts, the
    resourceVersion each watch started from recorded."""

    def __init__(self, lists: list[tuple[list[dict[str, Any]], str]], watches: list[Any]) -> None:
        self.lists = lists
        self.watches = watches
        self.versions: list[str | None] = []

    async def list(self, *_: Any, **__: Any) -> tuple[list[dict[str, Any]], str | None]:
        return self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]

    async def watch(
        self, *_: Any, version: str | None, **__: Any
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        self.versions.append(version)
        script: Any = self.watches.pop(0) if self.watches else None
        if script is None:  # silence until cancelled
            await asyncio.Event().wait()
        if isinstance(script, Exception):
            raise script
        for event in script:
            if isinstance(event, Exception):
                raise event
            yield event


def obj(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}}


async def test_the_watcher_lists_again_after_410_gone() -> None:
    kube = ScriptedKube(
        lists=[([obj("a", "1")], "1"), ([obj("b", "7")], "7")],
        watches=[
            [("ADDED", obj("c", "2")), Gone(410, "too old")],  # an ERROR event
            Gone(410, "too old"),  # the answer's status
            [("DELETED", obj("b", "8")), ("BOOKMARK", {"metadata": {"resourceVersion": "9"}})],
            None,
        ],
    )
    watcher = Watcher(kube, PODS, NS)  # type: ignore[arg-type]
    task = asyncio.create_task(watcher.run())
    try:
        await eventually(lambda: len(kube.versions) == 4)
        # the first watch starts at the list's version; after each 410 it lists again; a watch
        # the server ended resumes from the last version seen (the bookmark's)
        assert kube.versions == ["1", "7", "7", "9"]
        assert watcher.objects == {} and watcher.lists == 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_watcher_follows_changes_through_the_api(cluster: FakeCluster) -> None:
    cluster.add(SECRET_RESOURCE, secret("first"))
    seen: list[set[str]] = []
    watcher = Watcher(
        cluster.kube,
        SECRETS,
        NS,
        keep=lambda o: not o["metadata"]["name"].startswith("skip"),
        on_change=lambda: seen.append(set(watcher.objects)),
    )
    task = asyncio.create_task(watcher.run())
    try:
        await asyncio.wait_for(watcher.synced.wait(), 10)
        assert set(watcher.objects) == {"first"}
        await cluster.kube.create(SECRETS, NS, secret("second"))
        await cluster.kube.create(SECRETS, NS, secret("skipped"))
        await eventually(lambda: "second" in watcher.objects)
        await cluster.kube.delete(SECRETS, NS, "first")
        await eventually(lambda: "first" not in watcher.objects)
        assert set(watcher.objects) == {"second"}
        assert {"first", "second"} in seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_run_raises_what_it_cannot_get_past_and_run_forever_recovers(
    cluster: FakeCluster,
) -> None:
    down = {"kind": "Status", "code": 503, "message": "apiserver down"}
    cluster.server["list", SECRET_RESOURCE][:4] << 503 << down
    kube = cluster.kube.retrying(attempts=2, first=0.01)
    with pytest.raises(ServerError):
        await Watcher(kube, SECRETS, NS).run()  # lists 1 and 2

    watcher = Watcher(kube, SECRETS, NS)
    task = asyncio.create_task(watcher.run_forever(first=0.01))
    try:
        await eventually(lambda: watcher.error is not None)  # lists 3 and 4
        assert "apiserver down" in (watcher.error or "") and not watcher.synced.is_set()
        await asyncio.wait_for(watcher.synced.wait(), 10)  # list 5 works
        assert watcher.error is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
