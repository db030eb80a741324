"""Pod volumes as folders on the host (does I/O: files, and the API for ConfigMaps, Secrets and
ServiceAccount tokens). ConfigMap, Secret, downward API and projected volumes are written like
the kubelet's atomic writer (`..data` -> a timestamped folder, one symlink per key), so a
refresh (downward API annotations, the token) is atomic for the reader.

Supported: emptyDir, hostPath, configMap, secret, downwardAPI, projected (serviceAccountToken
through the TokenRequest API, bound to the pod; configMap; secret; downwardAPI). ConfigMap and
Secret volumes are written once, when the pod starts. Anything else (persistentVolumeClaim, ...)
fails the mount."""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.cluster.kubelet.api import Api
from tests.cluster.kubelet.spec import field_value, resource_value

Obj = Mapping[str, Any]
TOKEN_SECONDS = 3607


class MountError(Exception):
    """A volume cannot be set up (a missing ConfigMap or Secret, an unsupported kind)."""


@dataclass
class PodContext:
    pod: Obj
    pod_ip: str
    host_ip: str
    node_cpu: int
    node_memory: int
    token_expiry: dict[str, float] = field(default_factory=dict)  # volume name -> refresh at


def write_atomic(folder: str, payload: Mapping[str, tuple[bytes, int]]) -> None:
    """The kubelet's atomic writer: files under a new timestamped folder, `..data` swapped."""
    os.makedirs(folder, exist_ok=True)
    stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    target = os.path.join(folder, stamp)
    os.makedirs(target)
    for rel, (content, mode) in payload.items():
        path = os.path.join(target, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, mode)
    data = os.path.join(folder, "..data")
    old = os.readlink(data) if os.path.islink(data) else None
    tmp = os.path.join(folder, "..data_tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(stamp, tmp)
    os.rename(tmp, data)
    tops = {rel.split("/", 1)[0] for rel in payload}
    for top in tops:
        link = os.path.join(folder, top)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..data", top), link)
    for name in os.listdir(folder):
        if not name.startswith("..") and name not in tops:
            os.unlink(os.path.join(folder, name))
    if old and old != stamp:
        shutil.rmtree(os.path.join(folder, old), ignore_errors=True)


def _items(
    data: Mapping[str, bytes], items: list[Obj] | None, mode: int, what: str, optional: bool
) -> dict[str, tuple[bytes, int]]:
    if not items:
        return {key: (value, mode) for key, value in data.items()}
    out = {}
    for item in items:
        if item["key"] not in data:
            if optional:
                continue
            raise MountError(f"couldn't find key {item['key']} in {what}")
        out[item["path"]] = (data[item["key"]], int(item.get("mode", mode)))
    return out


async def _configmap(api: Api, namespace: str, name: str) -> dict[str, bytes] | None:
    cm = await api.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    if cm is None:
        return None
    data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    return data


async def _secret(api: Api, namespace: str, name: str) -> dict[str, bytes] | None:
    secret = await api.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
    if secret is None:
        return None
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def _downward(ctx: PodContext, items: list[Obj], mode: int) -> dict[str, tuple[bytes, int]]:
    out = {}
    containers = {c["name"]: c for c in (ctx.pod.get("spec") or {}).get("containers") or []}
    for item in items:
        if "fieldRef" in item:
            value = field_value(
                ctx.pod, item["fieldRef"]["fieldPath"], pod_ip=ctx.pod_ip, host_ip=ctx.host_ip
            )
        else:
            ref = item["resourceFieldRef"]
            container = containers.get(ref.get("containerName", "")) or {}
            value = resource_value(
                container,
                ref["resource"],
                ref.get("divisor"),
                node_cpu=ctx.node_cpu,
                node_memory=ctx.node_memory,
            )
        out[item["path"]] = (value.encode(), int(item.get("mode", mode)))
    return out


async def _token(api: Api, ctx: PodContext, source: Obj) -> bytes:
    meta, spec = ctx.pod["metadata"], ctx.pod["spec"]
    sa = spec.get("serviceAccountName") or "default"
    body: dict[str, Any] = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": int(source.get("expirationSeconds", TOKEN_SECONDS)),
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }
    if source.get("audience"):
        body["spec"]["audiences"] = [source["audience"]]
    answer = await api.request(
        "POST", f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{sa}/token", body=body
    )
    return str(answer["status"]["token"]).encode()


async def _keyed(
    api: Api, namespace: str, kind: str, src: Obj, mode: int
) -> dict[str, tuple[bytes, int]]:
    """The files of a ConfigMap or Secret source (a volume's or a projected one's)."""
    name = str(src.get("name") or src.get("secretName"))
    fetch = _configmap if kind == "configmap" else _secret
    data = await fetch(api, namespace, name)
    optional = bool(src.get("optional"))
    if data is None and not optional:
        raise MountError(f'{kind} "{name}" not found')
    return _items(data or {}, src.get("items"), mode, f'{kind} "{name}"', optional)


async def volume_payload(
    api: Api, ctx: PodContext, volume: Obj
) -> dict[str, tuple[bytes, int]] | None:
    """The files of an atomic-writer volume, or None for a volume that is not one."""
    namespace = ctx.pod["metadata"]["namespace"]
    for key, kind in (("configMap", "configmap"), ("secret", "secret")):
        if key in volume:
            src = volume[key]
            return await _keyed(api, namespace, kind, src, int(src.get("defaultMode", 0o644)))
    if "downwardAPI" in volume:
        src = volume["downwardAPI"]
        return _downward(ctx, src.get("items") or [], int(src.get("defaultMode", 0o644)))
    if "projected" in volume:
        src = volume["projected"]
        mode = int(src.get("defaultMode", 0o644))
        out: dict[str, tuple[bytes, int]] = {}
        for source in src.get("sources") or []:
            if "serviceAccountToken" in source:
                tok = source["serviceAccountToken"]
                out[tok["path"]] = (await _token(api, ctx, tok), mode)
                seconds = int(tok.get("expirationSeconds", TOKEN_SECONDS))
                ctx.token_expiry[volume["name"]] = time.monotonic() + 0.8 * seconds
            elif "configMap" in source:
                out.update(await _keyed(api, namespace, "configmap", source["configMap"], mode))
            elif "secret" in source:
                out.update(await _keyed(api, namespace, "secret", source["secret"], mode))
            elif "downwardAPI" in source:
                out.update(_downward(ctx, source["downwardAPI"].get("items") or [], mode))
            else:
                raise MountError(f"unsupported projected source {sorted(source)}")
        return out
    return None


async def set_up(api: Api, ctx: PodContext, volume: Obj, folder: str) -> str:
    """Create the volume under `folder`; the host path to bind."""
    if "emptyDir" in volume:
        os.makedirs(folder, exist_ok=True)
        return folder
    if "hostPath" in volume:
        path = str(volume["hostPath"]["path"])
        if volume["hostPath"].get("type") in ("DirectoryOrCreate",):
            os.makedirs(path, exist_ok=True)
        if not os.path.exists(path):
            raise MountError(f"hostPath {path} does not exist")
        return path
    payload = await volume_payload(api, ctx, volume)
    if payload is None:
        kinds = sorted(k for k in volume if k != "name")
        raise MountError(f"volume {volume['name']}: unsupported by the test kubelet: {kinds}")
    write_atomic(folder, payload)
    return folder


def needs_refresh(volume: Obj, ctx: PodContext, *, annotations_changed: bool) -> bool:
    """Downward-API volumes after a label/annotation change; tokens at 80 % of their life."""
    if "downwardAPI" in volume:
        return annotations_changed
    if "projected" in volume:
        expiry = ctx.token_expiry.get(volume["name"])
        downward = any("downwardAPI" in s for s in volume["projected"].get("sources") or [])
        return (downward and annotations_changed) or (
            expiry is not None and time.monotonic() >= expiry
        )
    return False
