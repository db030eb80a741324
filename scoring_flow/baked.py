"""`tekscore baked`: the standalone "baked engine" — one model, one input stream, one output
stream, no scheduler — run from the assets and environment a FastScore baked engine takes,
unchanged (docs/compatibility.md).

Environment:

- `MODEL`: the model file: `*.py` (python: FastScore `begin`/`action`, a Racetrack class with
  `perform`, or `score(records)`), `*.joblib`/`*.pkl`/`*.pickle` (scikit-learn), `*.onnx`;
- `SCHEMAS=name:path;...`: Avro record schemas (`.avsc`) by name;
- `STREAMS=0:path;1:path`: FastScore stream descriptors for input slot 0 and output slot 1;
- `ATTACHMENTS=path;...`: zip or tar.gz archives, extracted into one folder that is the model's
  working directory and on its import path (also named by `$TEKSCORE_ATTACHMENTS`);
- `CONNECT_PREFIX`: accepted and logged (a baked engine registers with no FastScore Connect);
- `TEKSCORE_DEAD_LETTER=path` (ours): a descriptor for the records that fail, with the reason.

Reads those files, extracts the attachments, downloads an HTTP `Url` input, then starts
`tekscore serve-model` as a child process on a free loopback port and waits for the model: a
model that fails to load (its `begin()` raises, say) ends the engine at once, exit 1, the cause
on the last line. Then runs the flow (`scoring_flow.baked_config`: batch when slot 0 ends by
itself, else streaming until SIGTERM) and stops the child.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import structlog
import yaml

from common.avro import SchemaError, parse_record_schema
from common.fetch import FetchError, fetch
from common.ports import free_port
from common.termination import TERMINATION_ENV, read_termination
from scoring_flow.baked_config import (
    Plan,
    baked_flow,
    check_slots,
    make_plan,
    parse_list,
    parse_pairs,
    service_config,
)
from scoring_flow.config import RuntimeSettings
from scoring_flow.errors import ConfigError, FlowError

log = structlog.get_logger("scoring_flow.baked")

POLL = 0.05


class ModelNotLoaded(FlowError):
    """The model did not load: the engine ends."""


# ---------------------------------------------------------------- reading the assets


def _read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what} {path}: {exc}") from exc


def read_schemas(text: str) -> dict[str, list[dict[str, Any]]]:
    """The SCHEMAS files as field lists by name."""
    schemas = {}
    for name, path in parse_pairs(text, "SCHEMAS").items():
        try:
            schemas[name] = parse_record_schema(_read_json(path, "schema"))
        except SchemaError as exc:
            raise ConfigError(f"schema {name!r} ({path}): {exc}") from exc
    return schemas


def prepare(env: Mapping[str, str]) -> Plan:
    """Read MODEL, SCHEMAS, STREAMS and TEKSCORE_DEAD_LETTER into a plan."""
    raw = env.get("MODEL") or ""
    model = Path(raw)
    if not raw or not model.is_file():
        raise ConfigError(f"MODEL must name a model file, got {raw!r}")
    text = None
    if model.suffix.lower() == ".py":
        text = model.read_text(encoding="utf-8", errors="replace")
    paths = parse_pairs(env.get("STREAMS") or "", "STREAMS")
    check_slots(set(paths), model=model, model_text=text)
    streams = {slot: _read_json(path, f"stream {slot}") for slot, path in paths.items()}
    dead = env.get("TEKSCORE_DEAD_LETTER")
    return make_plan(
        model=model,
        model_text=text,
        schemas=read_schemas(env.get("SCHEMAS") or ""),
        streams=streams,
        dead_letter=_read_json(dead, "TEKSCORE_DEAD_LETTER") if dead else None,
    )


def extract_attachments(archives: list[str], folder: Path) -> None:
    """Extract zip and tar.gz archives into `folder` (no member may land outside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    for raw in archives:
        path = Path(raw)
        name = path.name.lower()
        try:
            if name.endswith(".zip"):
                with zipfile.ZipFile(path) as archive:
                    for member in archive.namelist():
                        target = (folder / member).resolve()
                        if not target.is_relative_to(folder.resolve()):
                            raise ConfigError(f"ATTACHMENTS {raw}: {member!r} leaves the folder")
                    archive.extractall(folder)  # noqa: S202 - every member checked above
            elif name.endswith((".tar.gz", ".tgz")):
                with tarfile.open(path, "r:gz") as archive:
                    archive.extractall(folder, filter="data")
            else:
                raise ConfigError(
                    f"ATTACHMENTS {raw}: unknown archive type; supported: .zip, .tar.gz, .tgz"
                )
        except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
            raise ConfigError(f"ATTACHMENTS {raw}: {exc}") from exc
        log.info("attachment extracted", archive=str(path), folder=str(folder))


def download_input(plan: Plan, folder: Path) -> None:
    """An HTTP `Url` input, read once: downloaded, then read as a file."""
    url = plan.source.conversion.download_url
    if url is None:
        return
    try:
        path = fetch(url, folder, name="input")
    except FetchError as exc:
        raise ConfigError(f"stream 0: {exc.reason}") from exc
    plan.source.channel["config"]["path"] = str(path)
    log.info("input downloaded", url=url, bytes=path.stat().st_size)


# ---------------------------------------------------------------- the run


def _tekscore() -> str:
    beside = Path(sys.executable).parent / "tekscore"
    return str(beside) if beside.exists() else shutil.which("tekscore") or "tekscore"


def run_baked(*, metrics_port: int | None = None, http_port: int | None = None) -> int:
    """The `tekscore baked` command: the process exit code."""
    from common.logs import configure_logging
    from scoring_flow.runner import EXIT_CONFIG, EXIT_FAILED, RunOptions, ended, run_loaded

    env = dict(os.environ)
    settings = RuntimeSettings.from_env(
        {k: v for k, v in env.items() if k != "TEKSCORE_CALLBACK_URL"}
    )
    configure_logging(settings.log_level, settings.log_format, cache=True)
    folder = Path(tempfile.mkdtemp(prefix="tekscore-baked-"))
    child: subprocess.Popen[bytes] | None = None
    try:
        try:
            plan = prepare(env)
            if env.get("CONNECT_PREFIX"):
                log.info(
                    "CONNECT_PREFIX ignored",
                    value=env["CONNECT_PREFIX"],
                    why="a baked engine registers with no FastScore Connect",
                )
            for warning in plan.warnings:
                log.warning("stream descriptor", note=warning)
            os.environ.update(plan.secrets)  # the secretRefs of descriptor credentials
            work = folder / "attachments"
            extract_attachments(parse_list(env.get("ATTACHMENTS") or ""), work)
            download_input(plan, folder)
            port = free_port()
            flow = baked_flow(plan, url=f"http://127.0.0.1:{port}")
        except ConfigError as exc:
            return ended(EXIT_CONFIG, str(exc))
        child = _start(plan, folder=folder, work=work, port=port, env=env)
        try:
            _wait_for_model(child, port=port, budget=settings.ready_timeout, record=folder)
        except ModelNotLoaded as exc:
            _stop(child)
            child = None
            return ended(EXIT_FAILED, str(exc), reason="ModelLoadFailed")
        options = RunOptions(metrics_port=metrics_port, http_port=http_port)
        return run_loaded(flow, settings=settings, options=options)
    finally:
        if child is not None:
            _stop(child)
        shutil.rmtree(folder, ignore_errors=True)


def _start(
    plan: Plan, *, folder: Path, work: Path, port: int, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    config = folder / "service.yaml"
    config.write_text(yaml.safe_dump(service_config(plan)))
    child_env = {k: v for k, v in env.items() if k not in plan.secrets}
    child_env[TERMINATION_ENV] = str(folder / "service.termination")  # the engine's is ours
    child_env["TEKSCORE_ATTACHMENTS"] = str(work)
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(work), env.get("PYTHONPATH")]))
    child = subprocess.Popen(
        [_tekscore(), "serve-model", "--config", str(config), "--port", str(port)],
        env=child_env,
        cwd=work,
    )
    log.info(
        "engine started", model=str(plan.model), type=plan.model_type, port=port, pid=child.pid
    )
    return child


def _wait_for_model(
    child: subprocess.Popen[bytes], *, port: int, budget: float, record: Path
) -> None:
    """Until the model is ready; `ModelNotLoaded` with the cause as soon as it failed to load
    (or the child ended, or `budget` seconds passed, or SIGTERM came)."""
    stop: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    url = f"http://127.0.0.1:{port}/v2/models/model/ready"
    deadline = time.monotonic() + budget
    last = "no answer yet"
    try:
        with httpx.Client(timeout=5.0) as client:
            while True:
                if stop:
                    raise ModelNotLoaded("the engine was stopped before the model was ready")
                code = child.poll()
                if code is not None:
                    found = read_termination(record / "service.termination")
                    why = f": {found.message}" if found is not None else ""
                    raise ModelNotLoaded(f"the scoring service exited with code {code}{why}")
                try:
                    answer = client.get(url)
                except httpx.TransportError as exc:
                    last = type(exc).__name__
                else:
                    if answer.status_code == 200:
                        log.info("model ready")
                        return
                    body = _json_body(answer)
                    last = str(body.get("error") or f"HTTP {answer.status_code}")
                    if body.get("state") == "failed":
                        raise ModelNotLoaded(last)
                if time.monotonic() > deadline:
                    raise ModelNotLoaded(f"the model was not ready after {budget:.0f}s ({last})")
                time.sleep(POLL)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _json_body(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)
    log.debug("engine stopped", code=child.returncode)
