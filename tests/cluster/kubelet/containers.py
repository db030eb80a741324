"""One container of a pod as a local process (does I/O): its environment (env, envFrom,
valueFrom with the API), its command line, and the process itself:
`nsenter --net=<pod netns> bwrap --unshare-pid --as-pid-1 ... -- <command>`, so the command is
PID 1 of its own PID namespace (signals reach it as they reach a container's PID 1: SIGTERM only
when it handles it; SIGKILL kills the whole namespace), inside the pod's network namespace,
with its volumes bound over a read-only view of the host. stdout and stderr go to one log file
per container and restart."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tests.cluster.kubelet.api import Api
from tests.cluster.kubelet.images import Image
from tests.cluster.kubelet.spec import Mount, bwrap_mounts, expand, field_value, resource_value

Obj = Mapping[str, Any]


class ConfigError(Exception):
    """The container cannot be created: CreateContainerConfigError with this message."""


async def resolve_env(
    api: Api,
    *,
    pod: Obj,
    container: Obj,
    image: Image,
    base: Mapping[str, str],
    pod_ip: str,
    host_ip: str,
    node_cpu: int,
    node_memory: int,
) -> dict[str, str]:
    """The container's environment: the image's, then `base` (KUBERNETES_SERVICE_*, HOSTNAME),
    then envFrom, then env (each `$(VAR)`-expanded against what came before)."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {**image.env, **base}
    cache: dict[tuple[str, str], dict[str, str] | None] = {}

    async def source(kind: str, name: str) -> dict[str, str] | None:
        if (kind, name) not in cache:
            plural = "configmaps" if kind == "configmap" else "secrets"
            obj = await api.get(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
            if obj is None:
                cache[kind, name] = None
            elif kind == "configmap":
                cache[kind, name] = dict(obj.get("data") or {})
            else:
                cache[kind, name] = {
                    k: base64.b64decode(v).decode("utf-8", "replace")
                    for k, v in (obj.get("data") or {}).items()
                }
        return cache[kind, name]

    for ref in container.get("envFrom") or []:
        kind, spec = (
            ("configmap", ref["configMapRef"])
            if "configMapRef" in ref
            else ("secret", ref["secretRef"])
        )
        data = await source(kind, spec["name"])
        if data is None:
            if spec.get("optional"):
                continue
            raise ConfigError(f'{kind} "{spec["name"]}" not found')
        for key, value in data.items():
            env[ref.get("prefix", "") + key] = value
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand(str(item.get("value", "")), env)
            continue
        spec = item["valueFrom"]
        if "fieldRef" in spec:
            env[name] = field_value(
                pod, spec["fieldRef"]["fieldPath"], pod_ip=pod_ip, host_ip=host_ip
            )
        elif "resourceFieldRef" in spec:
            ref = spec["resourceFieldRef"]
            env[name] = resource_value(
                container,
                ref["resource"],
                ref.get("divisor"),
                node_cpu=node_cpu,
                node_memory=node_memory,
            )
        else:
            kind, ref = (
                ("configmap", spec["configMapKeyRef"])
                if "configMapKeyRef" in spec
                else ("secret", spec["secretKeyRef"])
            )
            data = await source(kind, ref["name"])
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    continue
                if data is None:
                    raise ConfigError(f'{kind} "{ref["name"]}" not found')
                what = "ConfigMap" if kind == "configmap" else "Secret"
                raise ConfigError(
                    f"couldn't find key {ref['key']} in {what} {namespace}/{ref['name']}"
                )
            env[name] = data[ref["key"]]
    return env


def command_line(container: Obj, image: Image, env: Mapping[str, str]) -> list[str]:
    """command/args over the image's ENTRYPOINT/CMD, as Kubernetes combines them."""
    command = [expand(str(c), env) for c in container.get("command") or []]
    args = [expand(str(a), env) for a in container.get("args") or []]
    if command:
        return command + args
    return list(image.entrypoint) + (args if container.get("args") is not None else list(image.cmd))


@dataclass
class Process:
    proc: asyncio.subprocess.Process
    pid: int  # PID 1 of the container, as seen from the host

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    async def stop(self, grace: float) -> int:
        """SIGTERM, then SIGKILL after `grace` seconds; the exit code."""
        if self.proc.returncode is None:
            self.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout=max(grace, 0.0))
            except TimeoutError:
                self.signal(signal.SIGKILL)
        return await self.proc.wait()


async def start(
    *,
    command: Sequence[str],
    env: Mapping[str, str],
    netns: str,
    hostname: str,
    mounts: Sequence[Mount],
    workdir: str,
    read_only_root: bool,
    log_path: str,
) -> Process:
    """Start the container's process; raises OSError when bwrap cannot start it."""
    read_fd, write_fd = os.pipe()
    args = [
        "nsenter", f"--net={netns}", "--",
        "bwrap", "--unshare-pid", "--unshare-uts", "--unshare-ipc", "--hostname", hostname,
        "--die-with-parent", "--as-pid-1", "--info-fd", str(write_fd),
        *bwrap_mounts(mounts, read_only_root=read_only_root),
        "--chdir", workdir or "/", "--", *command,
    ]  # fmt: skip
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                env=dict(env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(write_fd,),
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
    try:
        info = await asyncio.to_thread(_read_all, read_fd)
    finally:
        os.close(read_fd)
    try:
        pid = int(json.loads(info)["child-pid"])
    except (ValueError, KeyError) as exc:
        await proc.wait()
        with open(log_path, "rb") as f:
            tail = f.read()[-2000:].decode("utf-8", "replace")
        raise OSError(f"the container did not start: {tail.strip()}") from exc
    return Process(proc=proc, pid=pid)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


async def exec_in(pid: int, command: Sequence[str], env: Mapping[str, str], timeout: float) -> int:
    """Run `command` inside a running container (exec probes): its mount, net, PID, UTS and IPC
    namespaces, root and working folder. The exit code, or -1 on timeout."""
    proc = await asyncio.create_subprocess_exec(
        "nsenter",
        "-t",
        str(pid),
        "-m",
        "-n",
        "-p",
        "-u",
        "-i",
        "-r",
        "-w",
        "--",
        *command,
        env=dict(env),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        return await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return -1
