"""The test kubelet process (does I/O): `python -m tests.cluster.kubelet --env RUN_DIR/env
--state DIR --repo CHECKOUT [--shared DIR]`. Sets the pod network up, registers the Node, binds
unbound pods to it, runs the pods bound to it, relays Services, publishes the service-ca
ConfigMap, and serves container logs (`kubectl logs`). SIGTERM stops every pod (SIGKILL) and
removes the network. See docs/kubernetes.md, "The test cluster"."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import structlog

from tests.cluster.kubelet import network, node
from tests.cluster.kubelet.api import Api, watch_forever
from tests.cluster.kubelet.images import ImageTable
from tests.cluster.kubelet.pods import PodWorker
from tests.cluster.kubelet.proxy import ServiceProxy

log = structlog.get_logger("kubelet")
Obj = dict[str, Any]
NODE_NAME = "tekscore-node"
KUBELET_PORT = 10250


def read_env(path: str) -> dict[str, str]:
    out = {}
    for line in Path(path).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


class Kubelet:
    def __init__(
        self, *, env: dict[str, str], state: str, repo: Path, shared: list[str], backoff: float
    ) -> None:
        self.api = Api(url=env["APISERVER_URL"], token=env["ADMIN_TOKEN"], ca_file=env["CA_CERT"])
        self.ca_pem = Path(env["CA_CERT"]).read_text()
        self.apiserver = ("127.0.0.1", int(env["APISERVER_PORT"]))
        self.pods_dir = os.path.join(state, "pods")
        self.logs_dir = os.path.join(state, "logs")
        self.images = ImageTable(repo=repo)
        self.addresses = network.Addresses()
        self.backoff = backoff
        self.cpu = os.cpu_count() or 2
        self.memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        # read-write in every pod at the same path (a shared filesystem); the checkout read-only
        self.shared_paths = shared
        self.visible_paths = [str(repo)] if str(repo).startswith(("/tmp/", "/run/")) else []
        self.node = node.Node(
            self.api, name=NODE_NAME, cpu=self.cpu, memory=self.memory, kubelet_port=KUBELET_PORT
        )
        self.proxy = ServiceProxy(self.api, apiserver=self.apiserver, on_names=self._names)
        self.workers: dict[str, PodWorker] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.http = httpx.AsyncClient(trust_env=False)
        self._background: set[asyncio.Task[Any]] = set()

    def _names(self) -> None:
        for worker in self.workers.values():
            try:
                worker.write_hosts()
            except OSError as exc:
                log.warning("hosts file not written", pod=worker.name, error=str(exc))

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def event(
        self,
        pod: Obj,
        reason: str,
        message: str,
        *,
        kind: str = "Normal",
        container: str | None = None,
    ) -> None:
        meta = pod["metadata"]
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        involved: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        }
        if container:
            involved["fieldPath"] = f"spec.containers{{{container}}}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "kubelet", "host": NODE_NAME},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.api.create(f"/api/v1/namespaces/{meta['namespace']}/events", body)
        except Exception as exc:
            log.debug("event not written", error=str(exc))

    # -- pods ----------------------------------------------------------------------------------

    async def _pod_event(self, kind: str, obj: Obj) -> None:
        if kind == "LIST":
            items = obj.get("items") or []
            seen = {o["metadata"]["uid"] for o in items}
            for uid, worker in list(self.workers.items()):
                if uid not in seen:
                    worker.removed()
            for pod in items:
                self._pod(pod)
        elif kind == "DELETED":
            gone = self.workers.get(obj["metadata"]["uid"])
            if gone is not None:
                gone.removed()
        else:
            self._pod(obj)

    def _pod(self, pod: Obj) -> None:
        spec, meta = pod.get("spec") or {}, pod["metadata"]
        if not spec.get("nodeName"):
            self.spawn(node.bind(self.api, pod, NODE_NAME))
            return
        if spec["nodeName"] != NODE_NAME:
            return
        uid = meta["uid"]
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        worker = PodWorker(self, pod)
        if meta.get("deletionTimestamp"):
            worker.update(pod)
        self.workers[uid] = worker
        task = asyncio.ensure_future(worker.run())
        self.tasks[uid] = task
        task.add_done_callback(functools.partial(self._forget, uid))

    def _forget(self, uid: str, _task: object = None) -> None:
        self.workers.pop(uid, None)
        self.tasks.pop(uid, None)

    # -- the process ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        from tests.cluster.kubelet.logserver import serve_logs

        await asyncio.to_thread(network.setup)
        await self.node.register()
        log.info("node registered", node=NODE_NAME)
        group = [
            asyncio.ensure_future(self.node.heartbeat()),
            asyncio.ensure_future(self.proxy.run()),
            asyncio.ensure_future(node.publish_service_ca(self.api, self.ca_pem)),
            asyncio.ensure_future(serve_logs(self, port=KUBELET_PORT)),
        ]
        await self.proxy.synced.wait()
        group.append(
            asyncio.ensure_future(watch_forever(self.api, "/api/v1/pods", self._pod_event))
        )
        log.info("kubelet running")
        await stop.wait()
        log.info("kubelet stopping", pods=len(self.tasks))
        for task in group:
            task.cancel()
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*group, *self.tasks.values(), return_exceptions=True)
        self.proxy.close()
        await self.http.aclose()
        await self.api.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster.kubelet")
    parser.add_argument("--env", required=True, help="RUN_DIR/env of the control plane")
    parser.add_argument("--state", required=True, help="folder for pods, volumes and logs")
    parser.add_argument("--repo", required=True, help="the checkout whose tekscore is the image")
    parser.add_argument(
        "--shared",
        action="append",
        default=[],
        help="a folder bound read-write into every pod (repeatable)",
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=10.0,
        help="first container restart back-off in seconds (kubelet: 10)",
    )
    args = parser.parse_args(argv)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
    )
    for folder in (args.state, *args.shared):
        os.makedirs(folder, exist_ok=True)
    kubelet = Kubelet(
        env=read_env(args.env),
        state=args.state,
        repo=Path(args.repo).resolve(),
        shared=args.shared,
        backoff=args.backoff,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await kubelet.run(stop)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(network.cleanup)
            log.info("kubelet stopped")

    asyncio.run(run())
