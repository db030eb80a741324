"""The pod network of the test kubelet (does I/O: `ip` commands and setns, as root).

One bridge `tks0` with 10.244.0.1/16 (the node's address); each pod gets a network namespace
`tks-<n>` with a veth `eth0` on the bridge and its own Pod IP 10.244.x.y, so every pod can bind
0.0.0.0:8080 as in a real cluster. The service range 10.96.0.0/16 lives in a namespace of its
own, `tks-svc` (10.244.0.2 on the bridge), where it is a `local` route: the ClusterIP relays of
`proxy` listen there on any ClusterIP without adding addresses, and without meeting the host's
own listeners (a process on the host's 0.0.0.0:8080 would take every ClusterIP:8080). Pods and
the host reach the range through a route via 10.244.0.2.

Nothing leaves the machine: IP forwarding is never enabled and pods get no default route, only
the pod and service ranges. Names are fixed, so two sessions cannot share a machine: the
fixture holds a host-wide lock, and `cleanup` removes what a crashed session left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import os
import socket
import subprocess
import threading

BRIDGE = "tks0"
NODE_IP = "10.244.0.1"
PROXY_IP = "10.244.0.2"
POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
NETNS_PREFIX = "tks-"
PROXY_NETNS = "tks-svc"
VETH_PREFIX = "tksh"
NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def cleanup() -> None:
    """Remove every namespace, veth, bridge and route of this harness (stale or current)."""
    if os.path.isdir(NETNS_DIR):
        for name in os.listdir(NETNS_DIR):
            if name.startswith(NETNS_PREFIX):
                ip("netns", "del", name, check=False)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":", 2)[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(VETH_PREFIX):
            ip("link", "del", name, check=False)
    ip("link", "del", BRIDGE, check=False)
    for route in (
        ["route", "del", SERVICE_CIDR],
        ["route", "del", "local", SERVICE_CIDR, "table", "local"],
    ):
        for _ in range(10):
            if ip(*route, check=False).returncode != 0:
                break


def setup() -> None:
    """The bridge with the node address, the service namespace and its routes (after
    `cleanup`)."""
    cleanup()
    ip("link", "add", BRIDGE, "type", "bridge")
    ip("addr", "add", f"{NODE_IP}/16", "dev", BRIDGE)
    ip("link", "set", BRIDGE, "up")
    ns, veth = PROXY_NETNS, f"{VETH_PREFIX}svc"
    ip("netns", "add", ns)
    ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    ip("link", "set", veth, "master", BRIDGE, "up")
    ip("-n", ns, "addr", "add", f"{PROXY_IP}/16", "dev", "eth0")
    ip("-n", ns, "link", "set", "eth0", "up")
    ip("-n", ns, "link", "set", "lo", "up")
    ip("-n", ns, "route", "add", "local", SERVICE_CIDR, "dev", "lo", "table", "local")
    ip("route", "add", SERVICE_CIDR, "via", PROXY_IP, "dev", BRIDGE)


def listen_socket(address: str, port: int) -> socket.socket:
    """A listening TCP socket on address:port inside the service namespace, made by a thread
    that enters it (setns changes only that thread; a socket stays in its namespace)."""
    result: list[socket.socket | BaseException] = []

    def make() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"{NETNS_DIR}/{PROXY_NETNS}") as handle:
                if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(256)
            sock.setblocking(False)
            result.append(sock)
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=make)
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def pod_ip(index: int) -> str:
    return str(ipaddress.ip_address(NODE_IP) + index)


class Addresses:
    """Pod indexes (netns names, Pod IPs) handed out once per session, from 10.244.0.3 (.1 is
    the node, .2 the service namespace)."""

    def __init__(self) -> None:
        self._next = 1

    def take(self) -> int:
        self._next += 1
        return self._next


async def _ip(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "ip", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {err.decode().strip()}")


async def create_sandbox(index: int) -> tuple[str, str]:
    """A network namespace with eth0 on the bridge: (netns path, Pod IP)."""
    ns, veth, address = f"{NETNS_PREFIX}{index}", f"{VETH_PREFIX}{index}", pod_ip(index)
    await _ip("netns", "add", ns)
    await _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    await _ip("link", "set", veth, "master", BRIDGE, "up")
    await _ip("-n", ns, "addr", "add", f"{address}/16", "dev", "eth0")
    await _ip("-n", ns, "link", "set", "eth0", "up")
    await _ip("-n", ns, "link", "set", "lo", "up")
    await _ip("-n", ns, "route", "add", SERVICE_CIDR, "via", PROXY_IP)
    return f"{NETNS_DIR}/{ns}", address


async def remove_sandbox(index: int) -> None:
    with contextlib.suppress(RuntimeError):
        await _ip("netns", "del", f"{NETNS_PREFIX}{index}")
