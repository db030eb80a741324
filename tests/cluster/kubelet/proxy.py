"""kube-proxy for the test kubelet, in the old "userspace" mode (does I/O: sockets, the API).

For every Service with a ClusterIP, one TCP listener per port on ClusterIP:port (the service
range is a local route in its own network namespace, see `network`), relaying each connection
to a ready endpoint (round robin) from the EndpointSlices the real kube-controller-manager
maintains. The
`default/kubernetes` Service (10.96.0.1:443; it has no endpoints because the apiserver runs with
`--endpoint-reconciler-type=none`) relays to the apiserver's loopback port. A connection with no
ready endpoint is closed at once, like kube-proxy's reject rule.

It also keeps the names every pod's hosts file maps to ClusterIPs (`svc`, `svc.ns`, `svc.ns.svc`,
`svc.ns.svc.cluster.local`; the short name only within the Service's namespace): there is no
cluster DNS.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
from collections.abc import Callable
from typing import Any

import structlog

from tests.cluster.kubelet.api import Api, watch_forever
from tests.cluster.kubelet.network import listen_socket

log = structlog.get_logger("kubelet.proxy")
Obj = dict[str, Any]
DOMAIN = "cluster.local"


class ServiceProxy:
    def __init__(
        self, api: Api, *, apiserver: tuple[str, int], on_names: Callable[[], None]
    ) -> None:
        self.api = api
        self.apiserver = apiserver
        self.on_names = on_names
        self.services: dict[tuple[str, str], Obj] = {}
        self.slices: dict[tuple[str, str], Obj] = {}  # (ns, slice name) -> slice
        self.listeners: dict[tuple[str, int], tuple[asyncio.Server, tuple[str, str], Obj]] = {}
        self.rr = itertools.count()
        self.synced = asyncio.Event()
        self._slices_synced = asyncio.Event()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(
                watch_forever(
                    self.api,
                    "/apis/discovery.k8s.io/v1/endpointslices",
                    self._slice,
                    synced=self._slices_synced,
                )
            )
            await self._slices_synced.wait()
            group.create_task(
                watch_forever(self.api, "/api/v1/services", self._service, synced=self.synced)
            )

    # -- cache ---------------------------------------------------------------------------------

    async def _slice(self, kind: str, obj: Obj) -> None:
        if kind == "LIST":
            self.slices = {_key(o): o for o in obj.get("items") or []}
        elif kind == "DELETED":
            self.slices.pop(_key(obj), None)
        else:
            self.slices[_key(obj)] = obj

    async def _service(self, kind: str, obj: Obj) -> None:
        if kind == "LIST":
            self.services = {_key(o): o for o in obj.get("items") or []}
        elif kind == "DELETED":
            self.services.pop(_key(obj), None)
        else:
            self.services[_key(obj)] = obj
        await self._reconcile()
        self.on_names()

    async def _reconcile(self) -> None:
        wanted: dict[tuple[str, int], tuple[tuple[str, str], Obj]] = {}
        for key, svc in self.services.items():
            ip = (svc.get("spec") or {}).get("clusterIP")
            if not ip or ip == "None":
                continue
            for port in (svc.get("spec") or {}).get("ports") or []:
                if port.get("protocol", "TCP") == "TCP":
                    wanted[(ip, int(port["port"]))] = (key, port)
        for address in list(self.listeners):
            if address not in wanted:
                server, _, _ = self.listeners.pop(address)
                server.close()
        for address, (key, port) in wanted.items():
            if address in self.listeners:
                server, _, _ = self.listeners[address]
                self.listeners[address] = (server, key, port)
                continue
            try:
                server = await asyncio.start_server(
                    functools.partial(self._relay, address),
                    sock=await asyncio.to_thread(listen_socket, address[0], address[1]),
                )
            except OSError as exc:
                log.error("cannot listen", address=f"{address[0]}:{address[1]}", error=str(exc))
                continue
            self.listeners[address] = (server, key, port)

    def names(self) -> list[tuple[str, str, list[str]]]:
        """(namespace, ClusterIP, names) for every Service with a ClusterIP."""
        out = []
        for (ns, name), svc in sorted(self.services.items()):
            ip = (svc.get("spec") or {}).get("clusterIP")
            if ip and ip != "None":
                out.append(
                    (ns, ip, [f"{name}.{ns}.svc.{DOMAIN}", f"{name}.{ns}.svc", f"{name}.{ns}"])
                )
        return out

    # -- relay ---------------------------------------------------------------------------------

    def endpoints(self, key: tuple[str, str], port: Obj) -> list[tuple[str, int]]:
        ns, name = key
        if key == ("default", "kubernetes"):
            return [self.apiserver]
        out: list[tuple[str, int]] = []
        for (slice_ns, _), es in self.slices.items():
            labels = (es.get("metadata") or {}).get("labels") or {}
            if slice_ns != ns or labels.get("kubernetes.io/service-name") != name:
                continue
            number = next(
                (
                    int(p["port"])
                    for p in es.get("ports") or []
                    if p.get("name", "") == port.get("name", "") and p.get("port")
                ),
                None,
            )
            if number is None:
                continue
            for endpoint in es.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready") is False:
                    continue
                out.extend((address, number) for address in endpoint.get("addresses") or [])
        return sorted(out)

    async def _relay(
        self, address: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        entry = self.listeners.get(address)
        targets = self.endpoints(entry[1], entry[2]) if entry else []
        if not targets:
            writer.close()
            return
        host, port = targets[next(self.rr) % len(targets)]
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                with contextlib.suppress(OSError, RuntimeError):
                    if dst.can_write_eof():
                        dst.write_eof()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()

    def close(self) -> None:
        for server, _, _ in self.listeners.values():
            server.close()
        self.listeners.clear()


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def hosts_file(
    *, pod_ip: str, hostname: str, namespace: str, services: list[tuple[str, str, list[str]]]
) -> str:
    """The hosts file of a pod (pure)."""
    lines = [
        "# Kubernetes-managed hosts file (tekscore test kubelet).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{pod_ip}\t{hostname}",
    ]
    for ns, ip, names in services:
        short = [names[0].split(".", 1)[0]] if ns == namespace else []
        lines.append("\t".join([ip, " ".join(names + short)]))
    return "\n".join(lines) + "\n"
