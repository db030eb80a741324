"""Local child processes of a job: spawning, the `processes.json` table, identity and stopping.

Does I/O: starts processes, reads and writes files under the job's folder, sends signals.
Each process says why it stopped in its termination record (`common.termination`), a file
beside its log that the supervisor names; logs are only quoted (their tail) for people.

Identity: a process is recorded by pid *and* start time (psutil `create_time()`); a pid whose
start time differs is another process that reused the number, and is never signalled. Every
process is started in a new session, so its pid is also its process-group id and a signal to the
group reaches what it forked (uvicorn workers). While any member of a group lives the kernel does
not hand its id out again, so signalling a group whose leader is ours (or that still has members
although its leader is gone) cannot reach an unrelated process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil
import structlog

from common import ports
from common.files import atomic_write
from common.task_errors import TaskFailed, without_paths
from common.termination import TerminationRecord, read_termination
from local_runner import priority

Kind = Literal["service", "flow"]
TABLE_VERSION = 1
# psutil derives create_time from boot time + clock ticks: stable for a process, but compare with
# a margin smaller than any two processes sharing a pid could start apart.
_CREATE_TIME_SLACK = 0.05
_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True, kw_only=True)
class ProcessRecord:
    """One started process, as written to `processes.json`."""

    kind: Kind
    name: str
    shard: int | None
    pid: int
    create_time: float
    port: int | None
    command: list[str]
    log: str
    http_port: int | None = None

    @property
    def label(self) -> str:
        """`service iris`, `flow classify`, `flow classify[1]`."""
        shard = "" if self.shard is None else f"[{self.shard}]"
        return f"{self.kind} {self.name}{shard}"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {
            "kind": data["kind"],
            "name": data["name"],
            "shard": data["shard"],
            "pid": data["pid"],
            "createTime": data["create_time"],
            "port": data["port"],
            "httpPort": data["http_port"],
            "command": data["command"],
            "log": data["log"],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        kind = data["kind"]
        if kind not in ("service", "flow"):
            raise ValueError(f"unknown process kind {kind!r}")
        return cls(
            kind=kind,
            name=str(data["name"]),
            shard=None if data.get("shard") is None else int(data["shard"]),
            pid=int(data["pid"]),
            create_time=float(data["createTime"]),
            port=None if data.get("port") is None else int(data["port"]),
            http_port=None if data.get("httpPort") is None else int(data["httpPort"]),
            command=[str(c) for c in data["command"]],
            log=str(data["log"]),
        )


@dataclass(kw_only=True)
class ProcessTable:
    """The content of `processes.json`: every process started for a job, in start order.

    `installed` is set once install started everything; a table without it belongs to an install
    that did not finish (nothing to re-attach to, but everything in it must be stopped).
    `batch_flows` names the job's batch flows and `modes` each flow's mode, so a re-attached
    installer knows which exits mean success.
    """

    job_id: str
    processes: list[ProcessRecord] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=dict)
    installed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "version": TABLE_VERSION,
            "jobId": self.job_id,
            "installed": self.installed,
            "flowModes": dict(self.modes),
            "processes": [p.as_json() for p in self.processes],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessTable:
        if data.get("version") != TABLE_VERSION:
            raise ValueError(f"unsupported processes.json version {data.get('version')!r}")
        return cls(
            job_id=str(data["jobId"]),
            installed=bool(data.get("installed", False)),
            modes={str(k): str(v) for k, v in dict(data.get("flowModes", {})).items()},
            processes=[ProcessRecord.from_json(p) for p in data.get("processes", [])],
        )


def read_table(path: Path) -> ProcessTable | None:
    """The table at `path`, or None when there is none (nothing was started)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return ProcessTable.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise TaskFailed("InstallFailed", f"{path} is unreadable: {exc}.") from exc


def write_table(path: Path, table: ProcessTable) -> None:
    """Write the table atomically (temp file in the same folder, fsync, rename)."""
    atomic_write(path, json.dumps(table.as_json(), indent=1))


def find_tekscore() -> str:
    """The `tekscore` executable next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "tekscore"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("tekscore")
    if found is None:
        raise TaskFailed(
            "InstallFailed",
            f"The tekscore executable is neither next to {sys.executable} nor on PATH.",
        )
    return found


def free_port(taken: set[int]) -> int:
    """A loopback port nobody listens on now, not handed out recently by this process (concurrent
    jobs of one scheduler never pick the same port)."""
    try:
        return ports.free_port(taken)
    except ports.NoFreePort as exc:
        raise TaskFailed("InstallFailed", str(exc)) from exc


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?(?:[eE][0-9]+)?)([KMGTPE]i?|k)?$")
_UNITS = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def memory_bytes(quantity: str | int | float | None) -> int | None:
    """A Kubernetes memory quantity (`512Mi`, `1G`, `1.5Gi`, `1e9`, 1073741824) in bytes; None
    for none, and for what is not a quantity (the chart's schema refuses those)."""
    if quantity is None:
        return None
    if isinstance(quantity, int | float):
        return int(quantity)
    match = _QUANTITY.match(quantity.strip())
    if match is None:
        return None
    number, unit = float(match.group(1)), match.group(2) or ""
    binary = unit.endswith("i")
    return int(number * (1024 ** ("KMGTPE".index(unit[0]) + 1) if binary else _UNITS.get(unit, 1)))


def _limit_memory(limit: int) -> Callable[[], None]:
    """What the child runs before its program: RLIMIT_DATA (the private memory it may
    allocate: heap and anonymous mappings) set to `limit`; an allocation past it fails
    (`MemoryError` in Python) instead of the machine swapping."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    return apply


def start_session(
    command: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str],
    cwd: Path,
    nice: int = 0,
    pass_fds: Sequence[int] = (),
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `command` in a new session (its pid is its process group's id), stdin empty,
    stdout and stderr appended to `log`, at CPU priority `nice` (`local_runner.priority`); an
    `OSError` if it cannot start."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return priority.start(
            lambda: subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
                pass_fds=tuple(pass_fds),
                preexec_fn=preexec_fn,
            ),
            nice,
        )


def spawn(
    *,
    command: Sequence[str],
    log: Path,
    env: Mapping[str, str],
    cwd: Path,
    memory_limit: int | None = None,
    nice: int = 0,
) -> subprocess.Popen[bytes]:
    """A job's process (`start_session`); with `memory_limit`, its data memory limited to that
    many bytes (`_limit_memory`)."""
    try:
        return start_session(
            command,
            log=log,
            env=env,
            cwd=cwd,
            nice=nice,
            preexec_fn=None if memory_limit is None else _limit_memory(memory_limit),
        )
    except OSError as exc:
        raise TaskFailed("InstallFailed", f"Could not start {' '.join(command)}: {exc}.") from exc


def create_time(pid: int) -> float:
    """The start time of a process we just started (it exists: we hold it unreaped)."""
    return float(psutil.Process(pid).create_time())


def same_process(record: ProcessRecord) -> psutil.Process | None:
    """The recorded process if that pid is still the same process (zombies included)."""
    try:
        proc = psutil.Process(record.pid)
        started = proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    if abs(started - record.create_time) > _CREATE_TIME_SLACK:
        return None
    return proc


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False


def is_alive(record: ProcessRecord) -> bool:
    """True while the recorded process runs (same pid and start time, not a zombie)."""
    proc = same_process(record)
    return proc is not None and _running(proc)


def _group_members(record: ProcessRecord) -> list[psutil.Process]:
    """Live processes of the record's group, the leader excluded, started after the leader."""
    members = []
    for proc in psutil.process_iter():
        if proc.pid == record.pid:
            continue
        try:
            if (
                os.getpgid(proc.pid) == record.pid
                and proc.create_time() >= record.create_time - _CREATE_TIME_SLACK
                and _running(proc)
            ):
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return members


def _pid_taken_by_other(record: ProcessRecord) -> bool:
    """True when the record's pid now belongs to another process (so its group is gone)."""
    return psutil.pid_exists(record.pid) and same_process(record) is None


def signal_group(record: ProcessRecord, sig: signal.Signals) -> bool:
    """Send `sig` to the record's process group; False when nothing of it is left."""
    leader = same_process(record)
    if leader is None and _pid_taken_by_other(record):
        return False  # the pid is another process's now: our group is long gone
    if leader is not None and _running(leader):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pid, sig)
        return True
    # The leader has exited; members may remain (they keep the group id from being reused).
    members = _group_members(record)
    for proc in members:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.send_signal(sig)  # psutil refuses a pid reused since `proc` was made
    return bool(members)


def group_alive(record: ProcessRecord) -> bool:
    """True while the leader or any member of the record's group runs."""
    if is_alive(record):
        return True
    if _pid_taken_by_other(record):
        return False
    return bool(_group_members(record))


async def stop_groups(
    records: Iterable[ProcessRecord],
    *,
    grace_period: float,
    log: structlog.typing.FilteringBoundLogger,
    poll: float = 0.02,
) -> None:
    """SIGTERM each record's group, wait up to `grace_period`, SIGKILL what is left, wait."""
    pending = [r for r in records if signal_group(r, signal.SIGTERM)]
    for record in pending:
        log.info("process stopping", process=record.label, pid=record.pid)
    pending = await _wait_gone(pending, grace_period, poll, log)
    for record in pending:
        log.warning("process killed", process=record.label, pid=record.pid, grace=grace_period)
        signal_group(record, signal.SIGKILL)
    left = await _wait_gone(pending, 5.0, poll)
    for record in left:
        log.error("process survived SIGKILL", process=record.label, pid=record.pid)


async def _wait_gone(
    records: list[ProcessRecord],
    within: float,
    poll: float,
    log: structlog.typing.FilteringBoundLogger | None = None,
) -> list[ProcessRecord]:
    """The records whose group is still alive after `within` seconds; with `log`, each that
    ended is logged (`process stopped`, seconds since the signal)."""
    began = time.monotonic()
    while True:
        alive = [r for r in records if group_alive(r)]
        if log is not None:
            for record in records:
                if record not in alive:
                    log.info(
                        "process stopped",
                        process=record.label,
                        seconds=round(time.monotonic() - began, 3),
                    )
        records = alive
        if not records or time.monotonic() >= began + within:
            return records
        await asyncio.sleep(poll)


def _read_end(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - _TAIL_BYTES))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > _TAIL_BYTES:
        text = text.partition("\n")[2]  # drop the partial first line
    return text


def log_tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file ('' when it is missing or empty)."""
    return "\n".join(_read_end(path).rstrip("\n").splitlines()[-lines:])


def public_tail(path: Path, lines: int = 20) -> str | None:
    """The last lines of a log as the job's status shows them (`errors[].log_tail`): without the
    server's paths; None when the log is missing or empty."""
    return without_paths(log_tail(path, lines)) or None


def termination_file(record: ProcessRecord) -> Path:
    """Where the process writes its termination record: beside its log, `<name>.termination.json`
    (the supervisor names it in `TEKSCORE_TERMINATION_LOG`)."""
    return Path(record.log).with_suffix(".termination.json")


def termination(record: ProcessRecord) -> TerminationRecord | None:
    """The process's termination record, if it wrote one."""
    return read_termination(termination_file(record))


def why_stopped(record: ProcessRecord) -> str:
    """The message of the process's termination record, else that it wrote none (its log tail
    goes with the failure, apart: `failure`)."""
    said = termination(record)
    if said is not None and said.message:
        return said.message
    return "it stopped without saying why (no termination record)."


def failure(reason: str, message: str, record: ProcessRecord) -> TaskFailed:
    """A failure of the process's service or flow, its log tail attached."""
    return TaskFailed(
        reason, message, part=(record.kind, record.name), log_tail=public_tail(Path(record.log))
    )
