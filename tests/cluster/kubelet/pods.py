"""One pod's life on the test kubelet (does I/O): sandbox (network namespace, hosts file),
volumes, init containers in order, then the containers with their probes and restarts, status
written back through the `status` subresource, and deletion (SIGTERM, grace period, SIGKILL,
then the final delete with grace 0, as a kubelet does).

Container states, restart counts, exit codes, `terminated.reason` (Completed, Error,
DeadlineExceeded) and `terminated.message` (the file at `terminationMessagePath`, up to 4096
bytes, or with `FallbackToLogsOnError` the last 80 lines / 2048 bytes of the log of a failed
container) are what a kubelet reports. Restarts follow the kubelet's back-off (first restart at
once, then `backoff` seconds doubling up to 300 s, `CrashLoopBackOff` meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import structlog

from tests.cluster.kubelet import containers, network, volumes
from tests.cluster.kubelet.api import STRATEGIC, ApiError
from tests.cluster.kubelet.proxy import hosts_file
from tests.cluster.kubelet.spec import Mount

if TYPE_CHECKING:
    from tests.cluster.kubelet.main import Kubelet

log = structlog.get_logger("kubelet.pod")
Obj = dict[str, Any]
MESSAGE_LIMIT = 4096
MAX_BACKOFF = 300.0


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Container:
    spec: Obj
    init: bool
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    restarts: int = 0
    ready: bool = False
    started: bool = False
    process: containers.Process | None = None
    env: dict[str, str] = field(default_factory=dict)
    backoff_until: float = 0.0
    backoff: float = 0.0

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def status(self, pod_uid: str) -> Obj:
        out: Obj = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": f"tekscore-test://{self.spec.get('image', '')}",
            "ready": self.ready,
            "restartCount": self.restarts,
            "started": self.started,
            "state": self.state,
            "lastState": self.last_state,
        }
        if "waiting" not in self.state or self.restarts:
            out["containerID"] = f"bwrap://{pod_uid}/{self.name}/{self.restarts}"
        return out

    @property
    def terminated(self) -> Obj | None:
        found: Obj | None = self.state.get("terminated")
        return found


class PodWorker:
    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        self.kubelet = kubelet
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.log = log.bind(pod=f"{self.namespace}/{self.name}")
        spec = pod["spec"]
        self.restart_policy: str = spec.get("restartPolicy", "Always")
        self.inits = [Container(c, True) for c in spec.get("initContainers") or []]
        self.mains = [Container(c, False) for c in spec.get("containers") or []]
        for c in self.mains:
            c.state = {
                "waiting": {"reason": "PodInitializing" if self.inits else "ContainerCreating"}
            }
        self.dir = os.path.join(kubelet.pods_dir, self.uid)
        self.index = 0
        self.netns = ""
        self.pod_ip = ""
        self.start_time = ""
        self.phase = "Pending"
        self.reason: str | None = None
        self.message: str | None = None
        self.initialized = False
        self.sandbox = False
        self.transitions: dict[str, tuple[str, str]] = {}
        self.deleting = asyncio.Event()
        self.stopping = asyncio.Event()
        self._sent: Obj | None = None
        self.changed = asyncio.Event()
        self.dirty = asyncio.Event()
        self.mounts: dict[str, str] = {}  # volume name -> host path
        self.ctx: volumes.PodContext | None = None
        self.done = False
        self.gone = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._annotations = self._downward_keys(pod)

    # -- events from the watch -----------------------------------------------------------------

    @staticmethod
    def _downward_keys(pod: Obj) -> tuple[Any, Any]:
        meta = pod.get("metadata") or {}
        return (meta.get("annotations") or {}, meta.get("labels") or {})

    def update(self, pod: Obj) -> None:
        self.pod = pod
        if self.ctx is not None:
            self.ctx.pod = pod
        keys = self._downward_keys(pod)
        if keys != self._annotations:
            self._annotations = keys
            self._spawn(self._refresh_volumes(annotations_changed=True))
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            self.deleting.set()
            self.stopping.set()
        self.changed.set()

    def removed(self) -> None:
        """The pod object is gone (deleted with grace 0 by someone): stop everything now."""
        self.gone = True
        self.deleting.set()
        self.stopping.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- status --------------------------------------------------------------------------------

    def _condition(
        self, kind: str, ok: bool, reason: str | None = None, message: str | None = None
    ) -> Obj:
        status = "True" if ok else "False"
        previous = self.transitions.get(kind)
        stamp = previous[1] if previous and previous[0] == status else now()
        self.transitions[kind] = (status, stamp)
        cond: Obj = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": stamp,
        }
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        return cond

    def status(self) -> Obj:
        finished = self.phase in ("Succeeded", "Failed")
        unready = [c.name for c in self.mains if not c.ready]
        ready = not unready and not finished and bool(self.mains)
        if finished:
            why, text = "PodCompleted", None
        elif unready:
            why, text = (
                "ContainersNotReady",
                f"containers with unready status: [{' '.join(unready)}]",
            )
        else:
            why, text = None, None
        uninit = [c.name for c in self.inits if not c.terminated or c.terminated.get("exitCode")]
        init_why = None if self.initialized else "ContainersNotInitialized"
        init_text = (
            None
            if self.initialized
            else (f"containers with incomplete status: [{' '.join(uninit)}]")
        )
        conditions = [
            self._condition("PodReadyToStartContainers", self.sandbox and not self.done),
            self._condition("Initialized", self.initialized, init_why, init_text),
            self._condition("Ready", ready, why, text),
            self._condition("ContainersReady", ready, why, text),
            self._condition("PodScheduled", True),
        ]
        status: Obj = {
            "phase": self.phase,
            "conditions": conditions,
            "hostIP": network.NODE_IP,
            "hostIPs": [{"ip": network.NODE_IP}],
            "containerStatuses": [c.status(self.uid) for c in self.mains],
        }
        if self.inits:
            status["initContainerStatuses"] = [c.status(self.uid) for c in self.inits]
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        if self.start_time:
            status["startTime"] = self.start_time
        if self.reason:
            status["reason"] = self.reason
        if self.message:
            status["message"] = self.message
        return status

    def mark(self) -> None:
        self.dirty.set()

    async def _status_loop(self) -> None:
        """Write the status whenever it changed (coalesced), through the status subresource."""
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            await self._send()

    async def _send(self) -> None:
        status = self.status()
        if status == self._sent or self.gone:
            return
        try:
            await self.kubelet.api.patch(
                f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status",
                {"metadata": {"uid": self.uid}, "status": status},
                content_type=STRATEGIC,
            )
            self._sent = status
        except ApiError as exc:
            if exc.status in (404, 409):
                self.removed()
            else:
                self.log.warning("status not written", error=str(exc))
                self.dirty.set()

    async def flush(self) -> None:
        self.dirty.clear()
        await self._send()

    async def event(
        self, reason: str, message: str, *, kind: str = "Normal", container: str | None = None
    ) -> None:
        await self.kubelet.event(self.pod, reason, message, kind=kind, container=container)

    # -- the pod's life ------------------------------------------------------------------------

    async def run(self) -> None:
        status_task = asyncio.ensure_future(self._status_loop())
        try:
            await self._life()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("pod worker failed")
        finally:
            await self._stop_all(0)
            for task in list(self._tasks):
                task.cancel()
            await self._teardown()
            if not self.gone:
                with contextlib.suppress(Exception):
                    await self.flush()
            status_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status_task
            if self.deleting.is_set() and not self.gone:
                await self._final_delete()
            shutil.rmtree(self.dir, ignore_errors=True)

    async def _life(self) -> None:
        if (self.pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            self.done = True  # finished before a kubelet restart: only wait for its deletion
            await self.deleting.wait()
            return
        self.start_time = now()
        self.mark()
        await self._sandbox()
        self.sandbox = True
        self.mark()
        if not await self._volumes():
            return
        deadline = float(self.pod["spec"].get("activeDeadlineSeconds") or 0)
        life = asyncio.ensure_future(self._containers())
        stop = asyncio.ensure_future(self.stopping.wait())
        waits: list[asyncio.Future[Any]] = [life, stop]
        if deadline:
            waits.append(asyncio.ensure_future(asyncio.sleep(deadline)))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits[1:]:
            w.cancel()
        if not life.done():
            if not self.stopping.is_set():
                self.reason = "DeadlineExceeded"
                self.message = "Pod was active on the node longer than the specified deadline"
                await self.event("DeadlineExceeded", self.message, kind="Warning")
                self.phase = "Failed"
            self.stopping.set()
            await self._stop_all(self._grace())
            await life
            self._final_phase()
            self.mark()
        self.done = True
        await self._teardown()
        self.mark()
        await self.flush()
        await self.deleting.wait()

    def _grace(self) -> float:
        meta = self.pod.get("metadata") or {}
        if self.gone:
            return 0.0
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        return float(grace)

    def _final_phase(self) -> None:
        """Succeeded when every container ended with 0, else Failed (pods being deleted too)."""
        codes = [c.terminated.get("exitCode", 1) for c in self.mains if c.terminated]
        if self.phase not in ("Succeeded", "Failed"):
            every = len(codes) == len(self.mains) and all(code == 0 for code in codes)
            self.phase = "Succeeded" if every else "Failed"

    async def _final_delete(self) -> None:
        try:
            await self.kubelet.api.delete(
                f"/api/v1/namespaces/{self.namespace}/pods/{self.name}",
                {
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": self.uid},
                },
            )
        except ApiError as exc:
            if exc.status != 409:
                self.log.warning("final delete failed", error=str(exc))

    async def _sandbox(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        self.index = self.kubelet.addresses.take()
        self.netns, self.pod_ip = await network.create_sandbox(self.index)
        self.write_hosts()
        with open(os.path.join(self.dir, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        with open(os.path.join(self.dir, "hostname"), "w") as f:
            f.write(self.hostname + "\n")
        self.ctx = volumes.PodContext(
            pod=self.pod,
            pod_ip=self.pod_ip,
            host_ip=network.NODE_IP,
            node_cpu=self.kubelet.cpu,
            node_memory=self.kubelet.memory,
        )

    async def _teardown(self) -> None:
        if self.index and self.netns:
            self.netns = ""
            await network.remove_sandbox(self.index)

    @property
    def hostname(self) -> str:
        spec = self.pod["spec"]
        return str(spec.get("hostname") or self.name)[:63]

    def write_hosts(self) -> None:
        if not self.pod_ip:
            return
        text = hosts_file(
            pod_ip=self.pod_ip,
            hostname=self.hostname,
            namespace=self.namespace,
            services=self.kubelet.proxy.names(),
        )
        path = os.path.join(self.dir, "hosts")
        with open(path, "a+") as f:  # in place: the file is bind-mounted into the containers
            f.seek(0)
            if f.read() != text:
                f.seek(0)
                f.truncate()
                f.write(text)

    async def _volumes(self) -> bool:
        """Set every volume up; retried every 2 s while one fails (FailedMount)."""
        assert self.ctx is not None
        reported = ""
        while not self.deleting.is_set():
            try:
                for volume in self.pod["spec"].get("volumes") or []:
                    folder = os.path.join(self.dir, "volumes", volume["name"])
                    self.mounts[volume["name"]] = await volumes.set_up(
                        self.kubelet.api, self.ctx, volume, folder
                    )
                return True
            except (volumes.MountError, ApiError) as exc:
                message = f"MountVolume.SetUp failed: {exc}"
                if message != reported:
                    reported = message
                    await self.event("FailedMount", message, kind="Warning")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.deleting.wait(), 2.0)
        return False

    async def _refresh_volumes(self, *, annotations_changed: bool) -> None:
        if self.ctx is None or self.done:
            return
        for volume in self.pod["spec"].get("volumes") or []:
            if volume["name"] in self.mounts and volumes.needs_refresh(
                volume, self.ctx, annotations_changed=annotations_changed
            ):
                try:
                    payload = await volumes.volume_payload(self.kubelet.api, self.ctx, volume)
                    if payload is not None:
                        volumes.write_atomic(self.mounts[volume["name"]], payload)
                except Exception as exc:
                    self.log.warning("volume refresh failed", volume=volume["name"], error=str(exc))

    async def _token_refresher(self) -> None:
        while True:
            await asyncio.sleep(30)
            await self._refresh_volumes(annotations_changed=False)

    # -- containers ----------------------------------------------------------------------------

    async def _containers(self) -> None:
        self._spawn(self._token_refresher())
        for c in self.inits:
            while True:
                code = await self._run_once(c)
                if code is None:
                    return
                if code == 0:
                    break
                if self.restart_policy == "Never":
                    for m in self.mains:
                        m.state = {"waiting": {"reason": "PodInitializing"}}
                    self.phase = "Failed"
                    self.mark()
                    return
                await self._backoff(c)
        self.initialized = True
        self.mark()
        await asyncio.gather(*(self._supervise(c) for c in self.mains))
        self._final_phase()
        self.mark()

    async def _supervise(self, c: Container) -> None:
        while True:
            code = await self._run_once(c)
            if code is None or self.stopping.is_set():
                return
            if self.restart_policy == "Never" or (self.restart_policy == "OnFailure" and code == 0):
                return
            await self._backoff(c)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, or less when the pod is being stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), max(seconds, 0.0))

    async def _backoff(self, c: Container) -> None:
        """Wait before a restart: at once the first time, then the doubling back-off."""
        base = self.kubelet.backoff
        finished = time.monotonic()
        if c.backoff:
            wait = c.backoff
            c.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {int(wait)}s restarting failed container={c.name} "
                    f"pod={self.name}_{self.namespace}({self.uid})",
                }
            }
            self.mark()
            await self.event(
                "BackOff",
                "Back-off restarting failed container "
                f"{c.name} in pod {self.name}_{self.namespace}({self.uid})",
                kind="Warning",
                container=c.name,
            )
            await self._sleep(finished + wait - time.monotonic())
            c.backoff = min(c.backoff * 2, MAX_BACKOFF)
        else:
            c.backoff = base

    async def _run_once(self, c: Container) -> int | None:
        """Start the container and wait for it to end; its exit code (None when it could not
        start before the pod was stopped)."""
        image = self.kubelet.images.get(str(c.spec.get("image", "")))
        backoff = 1.0
        while image is None and not self.stopping.is_set():
            c.state = {
                "waiting": {
                    "reason": "ErrImagePull",
                    "message": f"image {c.spec.get('image')!r} is not in the test "
                    "kubelet's image table",
                }
            }
            self.mark()
            await self.event(
                "Failed",
                f'Failed to pull image "{c.spec.get("image")}": not in '
                "the test kubelet's image table",
                kind="Warning",
                container=c.name,
            )
            await self._sleep(backoff)
            c.state = {
                "waiting": {
                    "reason": "ImagePullBackOff",
                    "message": f'Back-off pulling image "{c.spec.get("image")}"',
                }
            }
            self.mark()
            await self._sleep(backoff * 4)
            backoff = min(backoff * 2, 30.0)
        while image is not None and not self.stopping.is_set():
            try:
                env = await containers.resolve_env(
                    self.kubelet.api,
                    pod=self.pod,
                    container=c.spec,
                    image=image,
                    base=self._base_env(),
                    pod_ip=self.pod_ip,
                    host_ip=network.NODE_IP,
                    node_cpu=self.kubelet.cpu,
                    node_memory=self.kubelet.memory,
                )
                break
            except containers.ConfigError as exc:
                c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
                self.mark()
                await self.event("Failed", f"Error: {exc}", kind="Warning", container=c.name)
                await self._sleep(2.0)
        if image is None or self.stopping.is_set():
            return None
        c.env = env
        run = c.restarts
        term_path = os.path.join(self.dir, "termination", f"{c.name}-{run}")
        os.makedirs(os.path.dirname(term_path), exist_ok=True)
        open(term_path, "w").close()
        log_path = self.log_path(c.name, run)
        try:
            c.process = await containers.start(
                command=containers.command_line(c.spec, image, env),
                env=env,
                netns=self.netns,
                hostname=self.hostname,
                mounts=self._mounts(c, image, term_path),
                workdir=str(c.spec.get("workingDir") or image.workdir),
                read_only_root=bool(
                    (c.spec.get("securityContext") or {}).get("readOnlyRootFilesystem")
                ),
                log_path=log_path,
            )
        except OSError as exc:
            stamp = now()
            c.state = {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": str(exc)[:MESSAGE_LIMIT],
                    "startedAt": stamp,
                    "finishedAt": stamp,
                }
            }
            self.mark()
            return 128
        started = now()
        c.state = {"running": {"startedAt": started}}
        if not c.init and self.phase == "Pending":
            self.phase = "Running"
        c.started = not c.spec.get("startupProbe")
        c.ready = c.started and not c.spec.get("readinessProbe") and not c.init
        self.mark()
        probes = None if c.init else asyncio.ensure_future(self._probes(c))
        try:
            code = await c.process.proc.wait()
        finally:
            if probes is not None:
                probes.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await probes
        c.ready = False
        c.started = False
        message = self._termination_message(c, term_path, log_path, code)
        terminated: Obj = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started,
            "finishedAt": now(),
            "containerID": f"bwrap://{self.uid}/{c.name}/{run}",
        }
        if message:
            terminated["message"] = message
        c.state = {"terminated": terminated}
        c.process = None
        self.mark()
        if self.stopping.is_set():
            return None
        restart = (
            code != 0
            if c.init
            else (
                self.restart_policy == "Always"
                or (self.restart_policy == "OnFailure" and code != 0)
            )
        )
        if restart and self.restart_policy != "Never":
            c.last_state = {"terminated": terminated}
            c.restarts += 1
        return code

    def log_path(self, container: str, run: int) -> str:
        return os.path.join(
            self.kubelet.logs_dir,
            f"{self.namespace}_{self.name}_{self.uid}",
            container,
            f"{run}.log",
        )

    def _termination_message(self, c: Container, term_path: str, log_path: str, code: int) -> str:
        with contextlib.suppress(OSError):
            with open(term_path, "rb") as f:
                text = f.read(MESSAGE_LIMIT).decode("utf-8", "replace")
            if text:
                return text
        if code != 0 and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            with contextlib.suppress(OSError):
                with open(log_path, "rb") as f:
                    lines = f.read().decode("utf-8", "replace").splitlines()[-80:]
                return "\n".join(lines)[-2048:]
        return ""

    def _base_env(self) -> dict[str, str]:
        api = "10.96.0.1"
        return {
            "HOSTNAME": self.hostname,
            "KUBERNETES_SERVICE_HOST": api,
            "KUBERNETES_SERVICE_PORT": "443",
            "KUBERNETES_SERVICE_PORT_HTTPS": "443",
            "KUBERNETES_PORT": f"tcp://{api}:443",
            "KUBERNETES_PORT_443_TCP": f"tcp://{api}:443",
            "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
            "KUBERNETES_PORT_443_TCP_PORT": "443",
            "KUBERNETES_PORT_443_TCP_ADDR": api,
        }

    def _mounts(self, c: Container, image: Any, term_path: str) -> list[Mount]:
        mounts = [Mount(dest, source, True) for dest, source in image.binds.items()]
        mounts += [Mount(p, p, False) for p in self.kubelet.shared_paths]
        mounts += [Mount(p, p, True) for p in self.kubelet.visible_paths]
        for m in c.spec.get("volumeMounts") or []:
            source = self.mounts.get(m["name"])
            if source is None:
                continue
            if m.get("subPath"):
                source = os.path.join(source, m["subPath"])
                if not os.path.exists(source):
                    os.makedirs(source)
            mounts.append(Mount(m["mountPath"], source, bool(m.get("readOnly"))))
        taken = {m.dest for m in mounts}
        for name in ("hosts", "resolv.conf", "hostname"):
            if f"/etc/{name}" not in taken:
                mounts.append(Mount(f"/etc/{name}", os.path.join(self.dir, name), True))
        path = c.spec.get("terminationMessagePath") or "/dev/termination-log"
        mounts.append(Mount(path, term_path, False))
        return mounts

    async def _stop_all(self, grace: float) -> None:
        """SIGTERM every running container, SIGKILL after `grace`; wait until they ended."""
        running = [c for c in self.inits + self.mains if c.process is not None]
        for c in running:
            await self.event("Killing", f"Stopping container {c.name}", container=c.name)
        await asyncio.gather(*(c.process.stop(grace) for c in running if c.process is not None))

    # -- probes --------------------------------------------------------------------------------

    async def _probes(self, c: Container) -> None:
        spec = c.spec
        if spec.get("startupProbe"):
            if not await self._probe_until(c, spec["startupProbe"], success=True):
                await self._kill_for(c, "Startup")
                return
            c.started = True
            c.ready = not spec.get("readinessProbe")
            self.mark()
        loops = []
        if spec.get("readinessProbe"):
            loops.append(self._readiness(c, spec["readinessProbe"]))
        if spec.get("livenessProbe"):
            loops.append(self._liveness(c, spec["livenessProbe"]))
        if loops:
            await asyncio.gather(*loops)

    async def _readiness(self, c: Container, probe: Obj) -> None:
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        successes = failures = 0
        while True:
            ok = await self._check(c, probe)
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if ok and successes >= int(probe.get("successThreshold", 1)) and not c.ready:
                c.ready = True
                self.mark()
            elif not ok and failures >= int(probe.get("failureThreshold", 3)) and c.ready:
                c.ready = False
                self.mark()
            await asyncio.sleep(float(probe.get("periodSeconds", 10)))

    async def _liveness(self, c: Container, probe: Obj) -> None:
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        failures = 0
        while True:
            await asyncio.sleep(float(probe.get("periodSeconds", 10)))
            failures = 0 if await self._check(c, probe) else failures + 1
            if failures >= int(probe.get("failureThreshold", 3)):
                await self._kill_for(c, "Liveness")
                return

    async def _probe_until(self, c: Container, probe: Obj, *, success: bool) -> bool:
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        failures = 0
        while True:
            if await self._check(c, probe) == success:
                return True
            failures += 1
            if failures >= int(probe.get("failureThreshold", 3)):
                return False
            await asyncio.sleep(float(probe.get("periodSeconds", 10)))

    async def _kill_for(self, c: Container, which: str) -> None:
        await self.event("Unhealthy", f"{which} probe failed", kind="Warning", container=c.name)
        await self.event(
            "Killing",
            f"Container {c.name} failed {which.lower()} probe, will be restarted",
            container=c.name,
        )
        if c.process is not None:
            grace = float(
                c.spec.get(f"{which.lower()}Probe", {}).get("terminationGracePeriodSeconds")
                or self.pod["spec"].get("terminationGracePeriodSeconds", 30)
            )
            self._spawn(c.process.stop(grace))

    def _port(self, c: Container, port: Any) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in c.spec.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise ValueError(f"unknown port {port!r}")

    async def _check(self, c: Container, probe: Obj) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        try:
            if "httpGet" in probe:
                get = probe["httpGet"]
                host = get.get("host") or self.pod_ip
                url = f"{get.get('scheme', 'HTTP').lower()}://{host}:{self._port(c, get['port'])}"
                headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
                response = await self.kubelet.http.get(
                    url + get.get("path", "/"), headers=headers, timeout=timeout
                )
                return 200 <= response.status_code < 400
            if "tcpSocket" in probe:
                port = self._port(c, probe["tcpSocket"]["port"])
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(probe["tcpSocket"].get("host") or self.pod_ip, port),
                    timeout,
                )
                writer.close()
                return True
            if "exec" in probe and c.process is not None:
                code = await containers.exec_in(
                    c.process.pid, probe["exec"]["command"], c.env, timeout
                )
                return code == 0
        except (OSError, TimeoutError, httpx.HTTPError, ValueError):
            return False
        return False


Factory = Callable[[Obj], PodWorker]
