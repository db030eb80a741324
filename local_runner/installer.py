"""The local installer: a job's scoring services and flows as supervised local processes.

What the local backend's install, wait and finally tasks call (docs/local-backend.md). Does I/O:
spawns `tekscore serve-model` and `tekscore flow run` (by command line only, never by import),
writes their configs, logs and `processes.json` under the job's folder, polls them over HTTP and
with psutil, and signals them.

Layout of a job's folder::

    processes.json             every process started (pid + start time), rewritten after each spawn
    services/<name>.json|.log  a scoring service's config (its endpoint resolved to a loopback
                               port) and its log
    services/<name>.termination.json   why it stopped (or cannot serve), written by the service
    flows/<name>.json          a flow's config (its logical endpoints resolved to loopback URLs)
    flows/<name>.log           its log (`<name>-<i>.log` per shard or replica, when several)
    flows/<name>.termination.json      why it stopped, with its final counters (per process)
    tmp/                       HOME and TMPDIR of every process of the job (model downloads)

Every process starts with an environment built from nothing (`local_runner.environment`: never
the server's credentials), listens on loopback only, and runs in the bubblewrap sandbox when the
installer is given one (`local_runner.sandbox`): there it may write only `tmp/`, its own
termination record and the data roots.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import ValidationError

from common.files import atomic_write
from common.task_errors import TaskFailed
from common.termination import TERMINATION_ENV
from ir.values import Values
from local_runner.environment import ChildEnv
from local_runner.priority import JOB_NICE
from local_runner.processes import (
    Kind,
    ProcessRecord,
    ProcessTable,
    create_time,
    failure,
    find_tekscore,
    free_port,
    is_alive,
    memory_bytes,
    read_table,
    spawn,
    stop_groups,
    termination,
    termination_file,
    why_stopped,
    write_table,
)
from local_runner.readiness import ServiceProbe, wait_ready
from local_runner.sandbox import Sandbox
from local_runner.warm import TakenSet, WarmPool

TABLE_FILE = "processes.json"
PRIVATE = "tmp"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class FlowReport:
    """What the scheduler has heard from a flow (`POST .../flows/{flow}/complete`)."""

    completed: bool
    error: str | None = None


@dataclass
class Endpoints:
    """Where a job's parts answer on this machine: each scoring service's base URL and each
    http-source flow's `POST` URL (loopback ports chosen at install)."""

    services: dict[str, str] = field(default_factory=dict)
    flows: dict[str, str] = field(default_factory=dict)


@dataclass(eq=False)
class _Watched:
    """A process being supervised: our child (`popen`) or, after a restart, one found by pid."""

    record: ProcessRecord
    popen: subprocess.Popen[bytes] | None = None
    gone_at_attach: bool = False
    gone_since: float | None = field(default=None)

    def exited(self) -> tuple[bool, int | None]:
        """(exited, exit code); the code is None for a process that is not our child."""
        if self.popen is not None:
            code = self.popen.poll()
            return code is not None, code
        return not is_alive(self.record), None


class LocalInstaller:
    """Install, watch and stop one job's processes; state lives in `job_dir/processes.json`."""

    poll_interval: float = 0.15
    ready_poll: float = 0.05  # services' readiness, while installing (a loopback GET)
    report_grace: float = 15.0  # how long a vanished, unreported batch flow is given to report

    def __init__(
        self,
        *,
        job_id: str,
        job_dir: Path,
        callback_url: str | None,
        callback_token: str | None,
        ready_timeout: float = 120.0,
        grace_period: float = 10.0,
        environment: ChildEnv | None = None,
        sandbox: Sandbox | None = None,
        warm: WarmPool | None = None,
        nice: int = JOB_NICE,
    ) -> None:
        self.job_id = job_id
        self.nice = nice
        self.job_dir = Path(job_dir)
        self.callback_url = callback_url
        self.callback_token = callback_token
        self.ready_timeout = ready_timeout
        self.grace_period = grace_period
        self.environment = environment or ChildEnv(source=dict(os.environ))
        self.sandbox = sandbox
        self.warm = warm
        self._taken: TakenSet | None = None
        self._table = ProcessTable(job_id=job_id)
        self._watched: list[_Watched] = []
        self._ports: set[int] = set()
        self.endpoints = Endpoints()
        self._log: structlog.typing.FilteringBoundLogger = structlog.get_logger(
            "local_runner.installer"
        ).bind(job_id=job_id)

    # ------------------------------------------------------------------ paths

    @property
    def table_path(self) -> Path:
        return self.job_dir / TABLE_FILE

    def log_path(self, kind: Literal["service", "flow"], name: str) -> Path:
        """The log of a service or flow process; `name` is `<flow>-<i>` for one of several."""
        return self.job_dir / ("services" if kind == "service" else "flows") / f"{name}.log"

    def log_paths(self, kind: Literal["service", "flow"], name: str) -> list[Path]:
        """Every log of a service or flow (all shards/replicas), in process order."""
        return [
            Path(w.record.log)
            for w in self._records_view()
            if w.record.kind == kind and w.record.name == name
        ]

    # ------------------------------------------------------------------ install

    async def install(self, values: Mapping[str, Any]) -> None:
        """Start every python scoring service, then every flow, and wait until all services are
        ready (the flows wait for them too).

        Raises `TaskFailed` (`InstallFailed`, `ServiceFailed`, `ModelLoadFailed`,
        `ServiceNotReady`); whatever was started is in `processes.json` for `uninstall`.
        """
        try:
            model = Values.model_validate(dict(values))
        except ValidationError as exc:
            raise TaskFailed("InstallFailed", f"The values are invalid: {exc}") from exc
        tekscore = find_tekscore()
        level = model.global_.log_level
        # warm spares, when a ready set is there: its folder becomes the job's folder
        self._taken = self.warm.take(self.job_dir) if self.warm is not None else None
        try:
            await self._install(model, values, tekscore, level)
        finally:
            if self._taken is not None:
                self._taken.release()
                self._taken = None
            if self.warm is not None:
                self.warm.refill()  # the next job's spares, once this one's are running

    async def _install(
        self, model: Values, values: Mapping[str, Any], tekscore: str, level: str
    ) -> None:
        for folder in ("services", "flows", PRIVATE):
            (self.job_dir / folder).mkdir(parents=True, exist_ok=True)
        self._table = ProcessTable(
            job_id=self.job_id, modes={f.name: f.mode for f in model.scoring_flows}
        )
        self._save()
        base = self._base_env(level)

        urls: dict[str, str] = {}
        probes: list[ServiceProbe] = []
        for service, raw in zip(model.scoring_services, values["scoringServices"], strict=True):
            if service.runtime == "external":
                continue
            port = free_port(self._ports)
            urls[service.name] = f"http://{LOOPBACK}:{port}"
            # its logical endpoint (name and port) resolved to the loopback port it gets here
            config = self._write_config(
                "services", service.name, {**raw, "url": urls[service.name], "port": port}
            )
            command = [
                tekscore, "serve-model", "--config", str(config), "--host", LOOPBACK,
                "--port", str(port), "--workers", str(service.workers),
            ]  # fmt: skip
            watched = self._start(
                kind="service",
                name=service.name,
                shard=None,
                command=command,
                env=base,
                port=port,
                memory_limit=memory_bytes(service.resources.limits.get("memory")),
            )
            probes.append(
                ServiceProbe(
                    name=service.name,
                    url=urls[service.name],
                    models=[m.name for m in service.models],
                    log=Path(watched.record.log),
                    termination=termination_file(watched.record),
                    exited=watched.exited,
                )
            )

        for flow, raw in zip(model.scoring_flows, values["scoringFlows"], strict=True):
            config_data = copy.deepcopy(dict(raw))
            for name, endpoint in config_data.get("services", {}).items():
                service = endpoint.pop("service", None)
                endpoint.pop("port", None)
                if service is not None:  # a logical endpoint: the local service's loopback URL
                    if service not in urls:
                        raise TaskFailed(
                            "InstallFailed",
                            f"Flow {flow.name!r} calls service {service!r} ({name}), which the "
                            "job does not run as a python service.",
                        )
                    endpoint["url"] = urls[service]
            http_port = None
            if flow.source.type == "http":
                http_port = free_port(self._ports)
                source = config_data["source"].setdefault("config", {})
                source["port"] = http_port
                path = source.get("path") or "/score"
                self.endpoints.flows[flow.name] = f"http://{LOOPBACK}:{http_port}{path}"
            config = self._write_config("flows", flow.name, config_data)
            count = flow.shards if flow.mode == "batch" else flow.replicas
            if flow.source.type == "http":
                count = 1
            secrets, missing = self.environment.secrets(raw.get("secrets", []))
            if missing:
                raise TaskFailed(
                    "InstallFailed",
                    f"Flow {flow.name!r} names secret keys the server does not have: "
                    f"{', '.join(missing)} (TEKSCORE_SECRET_<NAME>_<KEY> or TEKSCORE_SECRETS_DIR).",
                )
            for index in range(count):
                metrics_port = free_port(self._ports)
                env = {**self._flow_env(base), **secrets}
                if flow.mode == "batch":
                    env["JOB_COMPLETION_INDEX"] = str(index)
                env["TEKSCORE_REPLICA_INDEX"] = str(index)  # who it is, in its reports
                command = [
                    tekscore, "flow", "run", str(config), "--metrics-port", str(metrics_port),
                ]  # fmt: skip
                self._start(
                    kind="flow",
                    name=flow.name,
                    shard=index if count > 1 else None,
                    command=command,
                    env=env,
                    port=metrics_port,
                    http_port=http_port,
                )
        # flows wait for their services themselves (as on Kubernetes), so they start right away
        # and their start-up overlaps the services' model loading; install still ends only once
        # every service is ready, and fails on the first that cannot load its models
        self.endpoints.services.update(urls)
        if self._taken is not None:
            self._taken.release()
            self._taken = None
        await wait_ready(
            probes, ready_timeout=self.ready_timeout, poll=self.ready_poll, log=self._log
        )
        self._table.installed = True
        self._save()
        self._log.info(
            "job installed",
            services=sorted(urls),
            flows=[f.name for f in model.scoring_flows],
            processes=len(self._table.processes),
        )

    def _base_env(self, level: str) -> dict[str, str]:
        env = self.environment.base(self.job_dir / PRIVATE)
        env["TEKSCORE_LOG_FORMAT"] = "json"
        env["TEKSCORE_LOG_LEVEL"] = level
        env["TEKSCORE_BIND_HOST"] = LOOPBACK  # metrics; an http source's IR host overrides it
        return env

    def _flow_env(self, base: Mapping[str, str]) -> dict[str, str]:
        env = dict(base)
        env["TEKSCORE_JOB_ID"] = self.job_id
        if self.callback_url is not None:
            env["TEKSCORE_CALLBACK_URL"] = self.callback_url
        if self.callback_token is not None:
            env["TEKSCORE_CALLBACK_TOKEN"] = self.callback_token
        return env

    def _write_config(self, folder: str, name: str, data: Mapping[str, Any]) -> Path:
        path = self.job_dir / folder / f"{name}.json"
        atomic_write(path, json.dumps(data, indent=1, sort_keys=True), fsync=False)
        return path

    def _start(
        self,
        *,
        kind: Kind,
        name: str,
        shard: int | None,
        command: Sequence[str],
        env: Mapping[str, str],
        port: int,
        http_port: int | None = None,
        memory_limit: int | None = None,
    ) -> _Watched:
        log = self.log_path(kind, name if shard is None else f"{name}-{shard}")
        said = log.with_suffix(".termination.json")
        said.write_bytes(b"")  # no record of an earlier run; it exists for the sandbox to show
        env = {**env, TERMINATION_ENV: str(said)}
        spare = None
        if self._taken is not None:  # the same process, handed to a warm spare
            spare = self._taken.hand_over(
                kind=kind,
                args=command[1:],
                env=env,
                log_file=log,
                termination=said,
                memory_limit=memory_limit,
            )
        if spare is not None:
            popen, command = spare.popen, spare.command
        else:
            if self.sandbox is not None:
                command = self.sandbox.wrap(
                    command, job_dir=self.job_dir, private=self.job_dir / PRIVATE, writable=[said]
                )
            popen = spawn(
                command=command,
                log=log,
                env=env,
                cwd=self.job_dir,
                memory_limit=memory_limit,
                nice=self.nice,
            )
        record = ProcessRecord(
            kind=kind,
            name=name,
            shard=shard,
            pid=popen.pid,
            create_time=create_time(popen.pid),
            port=port,
            http_port=http_port,
            command=list(command),
            log=str(log),
        )
        watched = _Watched(record=record, popen=popen)
        self._watched.append(watched)
        self._table.processes.append(record)
        self._save()
        self._log.info(
            "process started", process=record.label, pid=popen.pid, port=port, warm=bool(spare)
        )
        return watched

    def _save(self) -> None:
        write_table(self.table_path, self._table)

    # ------------------------------------------------------------------ wait

    async def wait(self, reports: Callable[[str], FlowReport | None] | None = None) -> None:
        """Return when every batch flow process exited successfully; raise `TaskFailed` at the
        first failure. With no batch flow, wait until cancelled. Cancelling leaves every process
        running (`uninstall` stops them)."""
        if not self._watched:
            raise TaskFailed("InstallFailed", f"Job {self.job_id} has no installed processes.")
        modes = self._table.modes
        flows = [w for w in self._watched if w.record.kind == "flow"]
        services = [w for w in self._watched if w.record.kind == "service"]
        batch = [w for w in flows if modes.get(w.record.name) == "batch"]
        batch_names = sorted({w.record.name for w in batch})
        done: set[int] = set()
        while True:
            failed: TaskFailed | None = None
            for watched in flows:
                if id(watched) in done:
                    continue
                outcome = self._flow_outcome(watched, modes.get(watched.record.name), reports)
                if isinstance(outcome, TaskFailed):
                    failed = failed or outcome
                elif outcome:
                    done.add(id(watched))
                    self._log.info("flow process completed", process=watched.record.label)
            if failed is None and reports is not None:
                for name in batch_names:
                    report = reports(name)
                    if report is not None and report.completed and report.error:
                        failed = TaskFailed(
                            "FlowFailed", f"Flow {name!r} failed: {report.error}", ("flow", name)
                        )
                        break
            if batch and all(id(w) in done for w in batch):
                self._log.info("batch flows completed", flows=batch_names)
                return
            for watched in services:
                exited, code = watched.exited()
                if exited:
                    raise failure(
                        "ServiceFailed",
                        f"Scoring service {watched.record.name!r} exited"
                        + ("" if code is None else f" with code {code}")
                        + f": {why_stopped(watched.record)}",
                        watched.record,
                    )
            if failed is not None:
                raise failed
            await asyncio.sleep(self.poll_interval)

    def _flow_outcome(
        self,
        watched: _Watched,
        mode: str | None,
        reports: Callable[[str], FlowReport | None] | None,
    ) -> bool | TaskFailed:
        """True: a batch process finished well; False: still running (or awaiting its report);
        a `TaskFailed` describing how it failed."""
        exited, code = watched.exited()
        if not exited:
            return False
        record = watched.record
        name = record.name if record.shard is None else f"{record.name}[{record.shard}]"
        if mode != "batch":
            how = "" if code is None else f" with code {code}"
            return failure(
                "FlowFailed", f"Streaming flow {name!r} exited{how}: {why_stopped(record)}", record
            )
        if code == 0:
            return True
        if code is not None:
            why = why_stopped(record)
            return failure("FlowFailed", f"Flow {name!r} failed (exit code {code}): {why}", record)
        # Not our child (re-attached): its exit code is unknowable; ask the reports, then the
        # flow's own termination record.
        report = reports(record.name) if reports is not None else None
        if report is not None and report.completed:
            if report.error:
                return failure("FlowFailed", f"Flow {name!r} failed: {report.error}", record)
            return True
        said = termination(record)
        if said is not None and said.reason == "Completed":
            return True
        if said is not None:
            return failure("FlowFailed", f"Flow {name!r} failed: {said.message}", record)
        now = time.monotonic()
        if watched.gone_since is None:
            watched.gone_since = now
        if now - watched.gone_since < self.report_grace:
            return False
        when = "while the scheduler was down" if watched.gone_at_attach else "after a restart"
        return failure(
            "FlowFailed", f"Flow {name!r}: its process ended {when}, without reporting.", record
        )

    def completed_flows(self) -> list[tuple[str, dict[str, Any]]]:
        """(flow, final counters) of every batch-flow process whose termination record says it
        completed: `records_in`, `records_out`, `records_failed`, `records_filtered`, `shard`,
        `shards`, `replica`, `pod` (what its completion callback carries)."""
        done = []
        for watched in self._watched:
            record = watched.record
            if record.kind != "flow" or self._table.modes.get(record.name) != "batch":
                continue
            said = termination(record)
            if said is not None and said.reason == "Completed":
                keys = ("records_in", "records_out", "records_failed", "records_filtered")
                ids = ("shard", "shards", "replica", "pod")
                counters = {k: v for k, v in said.detail.items() if k in (*keys, *ids)}
                done.append((record.name, counters))
        return done

    # ------------------------------------------------------------------ uninstall

    async def uninstall(self, *, flows_done: bool = False) -> None:
        """Stop every process of the job (running flows first, then services; all at once when
        the flows have ended, or all reported their completion: `flows_done`): SIGTERM to each
        process group, up to `grace_period`, then SIGKILL. Idempotent; works from
        `processes.json` alone; never signals a process that merely reuses a recorded pid."""
        records = self._all_records()
        if not records:
            self._log.info("nothing to uninstall")
            return
        flows = [r for r in records if r.kind == "flow"]
        services = [r for r in records if r.kind == "service"]
        running = [w for w in self._watched if w.record.kind == "flow"]
        if not flows_done and (
            not running or any(w.popen is None or w.popen.poll() is None for w in running)
        ):
            # a flow still running (or not known to have ended) may be finishing a batch:
            # stop the flows before their services
            await stop_groups(flows, grace_period=self.grace_period, log=self._log)
            await stop_groups(services, grace_period=self.grace_period, log=self._log)
        else:
            await stop_groups(flows + services, grace_period=self.grace_period, log=self._log)
        await self._reap()
        self._log.info("job uninstalled", processes=len(records))

    async def _reap(self) -> None:
        """Collect the exit status of our stopped children (no zombies, no ResourceWarning)."""
        deadline = time.monotonic() + 5.0
        for watched in self._watched:
            popen = watched.popen
            while popen is not None and popen.poll() is None:
                if time.monotonic() >= deadline:
                    self._log.error("process not reaped", process=watched.record.label)
                    break
                await asyncio.sleep(0.02)

    def _all_records(self) -> list[ProcessRecord]:
        """What `processes.json` lists, plus anything only this instance knows of."""
        table = read_table(self.table_path)
        records = list(table.processes) if table is not None else []
        known = {(r.pid, r.create_time) for r in records}
        records += [
            w.record for w in self._watched if (w.record.pid, w.record.create_time) not in known
        ]
        return records

    def _records_view(self) -> list[_Watched]:
        if self._watched:
            return self._watched
        table = read_table(self.table_path)
        return [_Watched(record=r) for r in (table.processes if table else [])]

    # ------------------------------------------------------------------ restart

    @classmethod
    def reattach(
        cls,
        *,
        job_id: str,
        job_dir: Path,
        callback_url: str | None,
        callback_token: str | None,
        grace_period: float = 10.0,
    ) -> LocalInstaller | None:
        """An installer watching the job's recorded processes after a scheduler restart, or None
        when the job cannot be resumed: install had not finished, or a service or streaming-flow
        process is gone or is not the recorded one. Batch-flow processes that ended meanwhile are
        accepted: `wait` decides by their report (or log) whether they succeeded."""
        installer = cls(
            job_id=job_id,
            job_dir=job_dir,
            callback_url=callback_url,
            callback_token=callback_token,
            grace_period=grace_period,
        )
        log = installer._log
        try:
            table = read_table(installer.table_path)
        except TaskFailed as exc:
            log.warning("reattach impossible", why=exc.message)
            return None
        if table is None or not table.installed or table.job_id != job_id:
            log.warning("reattach impossible", why="install did not finish")
            return None
        for record in table.processes:
            alive = is_alive(record)
            batch_flow = record.kind == "flow" and table.modes.get(record.name) == "batch"
            if not alive and not batch_flow:
                log.warning("reattach impossible", why="process gone", process=record.label)
                return None
            installer._watched.append(_Watched(record=record, gone_at_attach=not alive))
        installer._table = table
        log.info("reattached", processes=len(table.processes))
        return installer
