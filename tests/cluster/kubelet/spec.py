"""Pure parts of the test kubelet: `$(VAR)` expansion, downward-API field values, resource
values, and the bwrap command line of a container (its mounts over a read-only view of the host).
No I/O except reading the host's folder listing in `bwrap_mounts` (to mirror it)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]

# top-level host folders never shown to a container (fresh /proc, /dev, /run, /tmp instead)
HIDDEN = {"proc", "dev", "sys", "run", "tmp", "lost+found"}

_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)|\$\$")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: known names are replaced, unknown ones kept as written,
    `$$` is a literal `$`."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR.sub(sub, text)


_INDEXED = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_value(pod: Obj, path: str, *, pod_ip: str, host_ip: str) -> str:
    """The value of a downward-API `fieldRef.fieldPath` for this pod."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    match = _INDEXED.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted((meta.get(path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    raise ValueError(f"unsupported fieldPath {path!r}")


_SUFFIX = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "m": 1e-3,
    "": 1,
}


def quantity(text: str | int | float) -> float:
    match = re.match(r"^([0-9.]+)([A-Za-z]*)$", str(text))
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"bad quantity {text!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def resource_value(
    container: Obj, resource: str, divisor: str | None, *, node_cpu: int, node_memory: int
) -> str:
    """`resourceFieldRef` as the kubelet computes it (limits default to the node's capacity),
    rounded up to the divisor."""
    section, _, kind = resource.partition(".")
    values = (container.get("resources") or {}).get(section) or {}
    if kind in values:
        amount = quantity(values[kind])
    elif section == "limits" or kind not in ("cpu", "memory"):
        amount = float(node_cpu if kind == "cpu" else node_memory)
    else:
        amount = 0.0
    unit = quantity(divisor) if divisor else 1.0
    return str(max(math.ceil(amount / unit), 1 if section == "limits" and kind == "cpu" else 0))


@dataclass(frozen=True)
class Mount:
    dest: str  # path in the container
    source: str  # host path
    read_only: bool


def resolve_dest(path: str, root: str = "/") -> str:
    """`path` with the symlinks of its host prefix resolved (`/var/run/x` -> `/run/x`): bwrap
    creates mount points without following symlinks into read-only folders."""
    parts = [p for p in path.split("/") if p]
    current = "/"
    for i, part in enumerate(parts):
        candidate = os.path.join(current, part)
        host = os.path.join(root, candidate.lstrip("/"))
        if os.path.islink(host) and (current != "/" or part not in HIDDEN):
            target = os.readlink(host)
            resolved = os.path.normpath(os.path.join(current, target))
            return resolve_dest("/".join([resolved, *parts[i + 1 :]]), root)
        current = candidate
    return "/" + "/".join(parts)


def bwrap_mounts(mounts: Sequence[Mount], *, read_only_root: bool, root: str = "/") -> list[str]:
    """bwrap arguments: a tmpfs root mirroring the host read-only (folders that must receive a
    new mount point are mirrored entry by entry on a tmpfs), fresh /proc /dev /run /tmp, then
    `mounts` (parents first), then the root made read-only when asked."""
    dests = [resolve_dest(m.dest, root) for m in mounts]
    # host folders that need a tmpfs because a mount point must be created inside them
    expand: set[str] = set()
    for dest in dests:
        parts = [p for p in dest.split("/") if p]
        for depth in range(1, len(parts)):
            ancestor = "/" + "/".join(parts[:depth])
            host = os.path.join(root, ancestor.lstrip("/"))
            child = os.path.join(host, parts[depth])
            if depth == 1 and parts[0] in HIDDEN:
                break
            if not os.path.isdir(host) or os.path.islink(host):
                break
            if not os.path.lexists(child):
                expand.update("/" + "/".join(parts[:d]) for d in range(1, depth + 1))
                break
    args = ["--tmpfs", "/"]

    def mirror(folder: str) -> None:
        host_folder = os.path.join(root, folder.lstrip("/"))
        for name in sorted(os.listdir(host_folder)):
            if folder == "/" and name in HIDDEN:
                continue
            path = os.path.join(folder, name)
            host = os.path.join(host_folder, name)
            if path in expand:
                args.extend(["--tmpfs", path])
                mirror(path)
            elif os.path.islink(host):
                args.extend(["--symlink", os.readlink(host), path])
            else:
                args.extend(["--ro-bind", host, path])

    mirror("/")
    args += [
        "--ro-bind",
        os.path.join(root, "sys"),
        "/sys",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/run",
        "--dir",
        "/tmp",
    ]
    for dest, mount in sorted(zip(dests, mounts, strict=True), key=lambda dm: dm[0].count("/")):
        args.extend(["--ro-bind" if mount.read_only else "--bind", mount.source, dest])
    if read_only_root:
        args.extend(["--remount-ro", "/"])
    return args
