"""Warm spares: job processes started and pre-imported ahead of need (docs/local-backend.md,
"Warm spares").

A `WarmPool` keeps one *set* of spares ready: `count` processes running `local_runner.spare`
(the python family's libraries imported: a service spare has `tekscore serve-model` and
scikit-learn, a flow spare `tekscore flow run`; `ROLES`), all of them in a fresh folder
`$TEKSCORE_HOME/spares/<id>/`, each in its own session (process group) at the jobs' CPU
priority (`local_runner.priority`) and, when the server has a sandbox, in the very bubblewrap
sandbox a job's process gets, that folder standing for the job's folder (read-only but its
`tmp/`). Their environment is the one every job process
starts from (`ChildEnv.base`), nothing of any job.

A job's install takes the whole set when it is ready (`take`): the folder is renamed to the
job's folder, so what the sandbox shows the spares *is* the job's folder and nothing else; each
of the job's processes is then handed to a spare (`TakenSet.hand_over`: its arguments, its
whole environment, its log and termination record as file descriptors) instead of being
started, and spares the job does not need are stopped. A spare serves one job only; a new set
is started for the next job (`refill`). When no ready set fits, the job's processes start cold,
as without the pool.

Does I/O: spawns and signals processes, socket messages, renames and removes folders under the
state folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from local_runner.environment import ChildEnv
from local_runner.priority import JOB_NICE
from local_runner.processes import start_session
from local_runner.sandbox import Sandbox

SPARES = "spares"
PRIVATE = "tmp"
READY = b"ready"
_RUNNING = (
    "uvicorn.loops.uvloop", "uvicorn.lifespan.on", "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.websockets.websockets_sansio_impl", "httpcore", "anyio.streams",
    "certifi", "concurrent.futures.thread",
)  # fmt: skip
SERVICE_FAMILY = (
    "scheduler.cli.main", "scoring_service.cli", "scoring_service.server",
    "scoring_service.models.sklearn", *_RUNNING,
    "sklearn", "joblib", "sklearn.linear_model", "sklearn.pipeline", "sklearn.preprocessing",
    "sklearn.ensemble", "sklearn.tree",
)  # fmt: skip
"""What a service spare imports ahead: `tekscore serve-model` and its machinery, what it
imports once running (uvicorn's protocols, measured as the modules a running service imports
after these), and scikit-learn with its common models."""
FLOW_FAMILY = (
    "scheduler.cli.main", "scoring_flow.cli", "scoring_flow.channel_cli", "scoring_flow.runner",
    "scoring_flow.channels.file", "scoring_flow.channels.http", "scoring_flow.channels.inline",
    *_RUNNING,
)  # fmt: skip
"""What a flow spare imports ahead: `tekscore flow run`, its machinery and what a running flow
imports (uvicorn's protocols, the HTTP client's transport, the file, http and inline channels)."""
ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "service": (SERVICE_FAMILY, ("sklearn",)),
    "flow": (FLOW_FAMILY, ()),
}
"""Each role's modules and warm-ups (`local_runner.spare.WARM_UPS`: `sklearn` scores a tiny
pipeline once). A set's spares alternate service, flow, service...: a job's service goes to a
service spare and its flow to a flow spare, either to the other role when none of its own is
left (it then imports the rest itself, as a cold start does). A module that fails to import is
only reported in the spare's log."""

log = structlog.get_logger("local_runner.warm")


@dataclass(eq=False)
class Spare:
    """One spare process and the runner's end of its hand-over socket."""

    popen: subprocess.Popen[bytes]
    channel: socket.socket
    command: list[str]
    log: Path
    role: str
    ready: bool = False

    def alive(self) -> bool:
        return self.popen.poll() is None


def stop(spares: Sequence[Spare]) -> None:
    """Kill the spares' process groups and collect them (they hold no job's work)."""
    for spare in spares:
        spare.channel.close()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(spare.popen.pid, signal.SIGKILL)
    for spare in spares:
        with contextlib.suppress(subprocess.TimeoutExpired):
            spare.popen.wait(timeout=5)


@dataclass(eq=False)
class TakenSet:
    """A set a job took: its folder is now the job's folder (`job_dir`); `inside` is where the
    spares see it (the set's old path, in the sandbox; `job_dir` without one)."""

    job_dir: Path
    inside: Path
    spares: list[Spare]
    sandboxed: bool

    def translate(self, text: str) -> str:
        """A path under the job's folder as the spares see it."""
        job = str(self.job_dir)
        if text == job or text.startswith(job + os.sep):
            return str(self.inside) + text[len(job) :]
        return text

    def hand_over(
        self,
        *,
        kind: str,
        args: Sequence[str],
        env: Mapping[str, str],
        log_file: Path,
        termination: Path,
        memory_limit: int | None,
    ) -> Spare | None:
        """Make the next spare the process `tekscore ARGS` would be, with exactly `env`; None
        when no spare is left (one that died is dropped and the next tried). In the sandbox the
        `termination` record goes as a descriptor (the spare names it in the environment). A
        spare of the process's `kind` (service, flow) is preferred."""
        while self.spares:
            spare = next((s for s in self.spares if s.role == kind), self.spares[0])
            self.spares.remove(spare)
            if not spare.alive():
                stop([spare])
                continue
            order = {
                "args": [self.translate(a) for a in args],
                "env": {k: self.translate(v) for k, v in env.items()},
                "cwd": str(self.inside),
                "memory_limit": memory_limit,
                "termination_fd": self.sandboxed,
            }
            log_file.parent.mkdir(parents=True, exist_ok=True)
            fds = [os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)]
            if self.sandboxed:
                fds.append(os.open(termination, os.O_WRONLY | os.O_CREAT, 0o644))
            try:
                spare.channel.settimeout(5.0)  # a large environment may not fit the buffer at once
                socket.send_fds(spare.channel, [json.dumps(order).encode()], fds)
            except OSError as exc:
                log.warning("warm spare lost", pid=spare.popen.pid, error=str(exc))
                stop([spare])
                continue
            finally:
                for fd in fds:
                    os.close(fd)
            spare.channel.close()
            with contextlib.suppress(OSError):
                if spare.log.stat().st_size == 0:  # nothing said before the hand-over
                    spare.log.unlink()
            return spare
        return None

    def release(self) -> None:
        """Stop the spares the job did not need (they saw its folder: never used again)."""
        for spare in self.spares:
            with contextlib.suppress(OSError):
                if spare.log.stat().st_size == 0:
                    spare.log.unlink()
        stop(self.spares)
        self.spares = []


@dataclass(eq=False)
class _Set:
    folder: Path
    spares: list[Spare]
    started: float = field(default_factory=time.monotonic)

    def ready(self) -> bool:
        return all(s.ready and s.alive() for s in self.spares)


class WarmPool:
    """Keeps one set of `count` spares of the python family ready for the next job."""

    def __init__(
        self,
        *,
        home: Path,
        count: int,
        environment: ChildEnv,
        sandbox: Sandbox | None,
        script: str,
        python: str = sys.executable,
        nice: int = JOB_NICE,
    ) -> None:
        self.folder = home / SPARES
        self.nice = nice
        self.count = count
        self.environment = environment
        self.sandbox = sandbox
        self.script = script
        self.python = python
        self._set: _Set | None = None
        self._watch: asyncio.Task[None] | None = None
        self._closed = False

    def clear(self) -> None:
        """Remove the folders of an earlier run's spares (they exit with their server)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def refill(self) -> None:
        """Start a new set unless one is there (or starting); needs a running event loop."""
        if self._closed or self.count < 1 or self._set is not None:
            return
        folder = self.folder / secrets.token_hex(6)
        (folder / PRIVATE).mkdir(parents=True)
        spares: list[Spare] = []
        try:
            for index in range(self.count):
                spares.append(self._spawn(folder, index))
        except OSError as exc:
            log.warning("warm spares not started", error=str(exc))
            stop(spares)
            shutil.rmtree(folder, ignore_errors=True)
            return
        self._set = _Set(folder=folder, spares=spares)
        self._watch = asyncio.get_running_loop().create_task(self._until_ready(self._set))

    def _spawn(self, folder: Path, index: int) -> Spare:
        role = "service" if index % 2 == 0 else "flow"
        preload, warm_ups = ROLES[role]
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        command = [
            self.python, "-P", "-m", "local_runner.spare", "--fd", str(theirs.fileno()),
            "--script", self.script, "--preload", ",".join(preload),
            "--warm-up", ",".join(warm_ups),
        ]  # fmt: skip
        if self.sandbox is not None:
            command = self.sandbox.wrap(command, job_dir=folder, private=folder / PRIVATE)
        spare_log = folder / f"spare-{index}.log"
        try:
            popen = start_session(
                command,
                log=spare_log,
                env=self.environment.base(folder / PRIVATE),
                cwd=folder,
                nice=self.nice,
                pass_fds=(theirs.fileno(),),
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        return Spare(popen=popen, channel=ours, command=command, log=spare_log, role=role)

    async def _until_ready(self, spares: _Set) -> None:
        loop = asyncio.get_running_loop()
        for spare in spares.spares:
            try:
                said = await loop.sock_recv(spare.channel, 16)
            except OSError:
                said = b""
            if said != READY:
                log.warning(
                    "warm spare failed",
                    pid=spare.popen.pid,
                    exit_code=spare.popen.poll(),
                    log=str(spare.log),
                )
                if self._set is spares:
                    self._set = None
                stop(spares.spares)
                shutil.rmtree(spares.folder, ignore_errors=True)
                return
            spare.ready = True
        log.info(
            "warm spares ready",
            spares=len(spares.spares),
            pids=[s.popen.pid for s in spares.spares],
            roles=[s.role for s in spares.spares],
            seconds=round(time.monotonic() - spares.started, 3),
            sandboxed=self.sandbox is not None,
        )

    def take(self, job_dir: Path) -> TakenSet | None:
        """The ready set, its folder renamed to `job_dir` (which must not exist); None when
        there is none ready (the job starts its processes cold)."""
        current = self._set
        if current is not None and any(s.ready and not s.alive() for s in current.spares):
            log.warning("warm spare died", folder=str(current.folder))
            stop(current.spares)
            shutil.rmtree(current.folder, ignore_errors=True)
            self._set = current = None
        if current is None or not current.ready() or job_dir.exists():
            return None
        job_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            current.folder.rename(job_dir)
        except OSError as exc:
            log.warning("warm spares not taken", error=str(exc))
            return None
        self._set = None
        for spare in current.spares:
            spare.log = job_dir / spare.log.name
        inside = current.folder if self.sandbox is not None else job_dir
        return TakenSet(
            job_dir=job_dir,
            inside=inside,
            spares=list(current.spares),
            sandboxed=self.sandbox is not None,
        )

    async def close(self) -> None:
        """Stop the set that is waiting and remove its folder."""
        self._closed = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._set is not None:
            stop(self._set.spares)
            shutil.rmtree(self._set.folder, ignore_errors=True)
            self._set = None
