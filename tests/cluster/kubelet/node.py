"""The node's side of the test kubelet (does I/O: the API): the Node object and its Lease
(heartbeat), the scheduler's one job (bind every unbound pod to this node with the `binding`
subresource; no filtering, taints or affinity), and the stand-in for OpenShift's service-ca
operator (the apiserver is the openshift fork: it adds a `configMap: openshift-service-ca.crt`
source to every projected ServiceAccount volume, so that ConfigMap is published in every
namespace with the cluster CA, as the operator would)."""

from __future__ import annotations

import asyncio
import platform
from datetime import UTC, datetime
from typing import Any

import structlog

from tests.cluster.kubelet.api import Api, ApiError, watch_forever
from tests.cluster.kubelet.network import NODE_IP

log = structlog.get_logger("kubelet.node")
Obj = dict[str, Any]
SERVICE_CA = "openshift-service-ca.crt"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Node:
    def __init__(self, api: Api, *, name: str, cpu: int, memory: int, kubelet_port: int) -> None:
        self.api = api
        self.name = name
        self.cpu = cpu
        self.memory = memory
        self.kubelet_port = kubelet_port
        self.ready = asyncio.Event()

    def status(self) -> Obj:
        stamp = now()
        capacity = {
            "cpu": str(self.cpu),
            "memory": f"{self.memory // 1024}Ki",
            "pods": "110",
            "ephemeral-storage": "100Gi",
        }
        conditions = [
            {
                "type": kind,
                "status": "False",
                "reason": f"KubeletHas{reason}",
                "message": f"kubelet has {message}",
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": stamp,
            }
            for kind, reason, message in (
                ("MemoryPressure", "SufficientMemory", "sufficient memory available"),
                ("DiskPressure", "NoDiskPressure", "no disk pressure"),
                ("PIDPressure", "SufficientPID", "sufficient PID available"),
            )
        ] + [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "tekscore test kubelet is posting ready status",
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": stamp,
            }
        ]
        return {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": NODE_IP},
                # the apiserver dials the Hostname address first (kubectl logs); nothing
                # resolves the node's name, so it is the address too
                {"type": "Hostname", "address": NODE_IP},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": "tekscore",
                "systemUUID": "tekscore",
                "bootID": "tekscore",
                "kernelVersion": platform.release(),
                "osImage": "tekscore test kubelet",
                "containerRuntimeVersion": "bwrap://0.8",
                "kubeletVersion": "v1.36.2",
                "kubeProxyVersion": "v1.36.2",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    async def register(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "node.kubernetes.io/instance-type": "tekscore-test",
                },
            },
            "spec": {},
        }
        await self.api.create("/api/v1/nodes", body)
        await self.api.patch(
            f"/api/v1/nodes/{self.name}/status",
            {"status": self.status()},
        )
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": self.name,
                "leaseDurationSeconds": 40,
                "renewTime": now_micro(),
            },
        }
        await self.api.create(
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease
        )
        self.ready.set()

    async def heartbeat(self) -> None:
        """Renew the Lease every 10 s and the Node status every 30 s."""
        count = 0
        while True:
            await asyncio.sleep(10)
            count += 1
            try:
                await self.api.patch(
                    f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}",
                    {"spec": {"renewTime": now_micro(), "holderIdentity": self.name}},
                )
                if count % 3 == 0:
                    await self.api.patch(
                        f"/api/v1/nodes/{self.name}/status",
                        {"status": self.status()},
                    )
            except Exception as exc:
                log.warning("heartbeat failed", error=str(exc))


async def bind(api: Api, pod: Obj, node: str) -> None:
    """The scheduler's decision: this node (pods with a nodeName or being deleted are left)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    if spec.get("nodeName") or meta.get("deletionTimestamp"):
        return
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return
    body = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }
    try:
        await api.request(
            "POST", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", body=body
        )
    except ApiError as exc:
        if exc.status not in (404, 409):
            raise


async def publish_service_ca(api: Api, ca_pem: str) -> None:
    """Keep ConfigMap `openshift-service-ca.crt` (key `service-ca.crt`) in every namespace."""

    async def ensure(kind: str, obj: Obj) -> None:
        items = (obj.get("items") or []) if kind == "LIST" else [obj]
        if kind == "DELETED":
            return
        for ns in items:
            meta = ns.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                continue
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": SERVICE_CA,
                    "namespace": meta["name"],
                    "annotations": {"service.beta.openshift.io/inject-cabundle": "true"},
                },
                "data": {"service-ca.crt": ca_pem},
            }
            try:
                await api.create(f"/api/v1/namespaces/{meta['name']}/configmaps", body)
            except ApiError as exc:
                if exc.status != 403:  # a namespace being deleted
                    log.warning("service-ca configmap", namespace=meta["name"], error=str(exc))

    await watch_forever(api, "/api/v1/namespaces", ensure)
