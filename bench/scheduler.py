"""Benchmark of the scheduling server (local backend): API latency with 10,000 jobs stored, against
a bare FastAPI endpoint served the same way in the same run, and the iris job's latency.

1. **API.** A real `tekscore serve` (own temporary `TEKSCORE_HOME`, API token set) whose store
   was filled *directly* (`scheduler.stores.sqlite.SqliteStore` + `scheduler.jobs.prepare_job`)
   with 10,000 SUCCEEDED jobs before it started, so it runs none of them. Measured:
   `GET /api/v1/jobs/{id}` (random ids), `GET /api/v1/jobs?limit=50`, the same with a label filter
   (one job in 10 matches, and one in 10,000: a full scan), and `POST /api/v1/jobs` (a small
   inline -> map -> discard pipeline; these do start real jobs, so only a few, one at a time,
   start latency only).
   Baseline: a bare FastAPI app with one endpoint returning a small JSON object behind the same
   bearer-token dependency, run by `uvicorn_config`'s exact `uvicorn.Config` (only the app swapped).
   Load generator: a separate process, a raw HTTP/1.1 keep-alive client on uvloop (pre-built
   requests, Content-Length parsing); it prints its own CPU use next to the server's so one can
   see the server, not the client, is the bottleneck. Each endpoint runs with 1 connection
   (latency) and with `--concurrency` connections (requests/s). Target: get and list p50 within
   2x of the bare endpoint's p50 (1 connection).
2. **Job.** 10,000 iris-like records (`examples/iris/train.py`), the model trained into a temporary
   folder with `model.yaml` + `batch.yaml`, run through a real server `--repeat` times. Phases from
   the job's `/events`, the scheduler's log and the service/flow logs (same clock); "first record
   scored" is the first time the flow's own `/metrics` shows `records_out > 0` (polled every
   10 ms; the file sink only renames its output into place at the end). Target: SUCCEEDED under
   5 s.

3. **Start** (`--part start`, about 10 minutes). Start latency (POST -> 201 of the small
   inline pipeline, each once the previous job ended) with nothing running and with
   `--running` (12) never-ending jobs running (streaming http flows), one server per
   pre-processing mode of `--modes` (`thread`, `pool=N`), all up at once, started in
   alternation. Target: p99 < 50 ms with 12 running.
4. **Busy** (`--part busy`, about 4 minutes). Start latency while `--busy` (4) jobs keep both
   cores busy (a batch flow whose python step burns CPU, one process each), once with the jobs'
   processes at the server's priority (`TEKSCORE_JOB_NICE=0`) and once at the default nice
   value (docs/local-backend.md, "CPU priority"), one server after the other; also the
   server's run-queue wait per start (`/proc/<pid>/task/*/schedstat`: time its threads were
   ready to run but waited for a core).

The API part's store is filled by copying one job the server's own code wrote, with new ids
(`executemany`), so `--jobs 1000000` fills in minutes, not hours.

Run: `.venv/bin/python bench/scheduler.py [--part api|job|start|busy|all] [--jobs 10000]
[--records 10000]`.
Loopback only; every child process is stopped at the end; about 1.5-2 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples" / "iris"))

from common.ports import free_port  # noqa: E402

TEKSCORE = str(Path(sys.executable).parent / "tekscore")
TOKEN = "bench-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TARGET_RATIO = 2.0
TARGET_JOB_SECONDS = 5.0
TARGET_START_MS = 50.0

SMALL_PIPELINE = """\
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {name: bench-small}
spec:
  dataChannels:
    - {name: rows, direction: source, type: inline, config: {records: [{"id": 1}, {"id": 2}]}}
    - {name: nowhere, direction: sink, type: discard}
  scoringFlows:
    - {name: copy, source: rows, sink: nowhere, steps: [{type: map, set: {seen: true}}]}
"""


def uptime() -> str:
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------- servers


class Server:
    """A child process serving HTTP on loopback (the real `tekscore serve`, or the bare app)."""

    def __init__(self, command: list[str], *, port: int, env: dict[str, str], log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=out)
        self.ps = psutil.Process(self.proc.pid)

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + path, headers=AUTH, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become ready: {self.log.read_text()[-3000:]}")

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def scheduler_env(home: Path) -> dict[str, str]:
    """The server's environment: the run's temporary folder (IR, model, records; the home is
    inside it, which the rules exclude) is its data root and code source."""
    return {
        **os.environ,
        "TEKSCORE_HOME": str(home),
        "TEKSCORE_API_TOKENS": TOKEN,
        "TEKSCORE_SECRET": "bench-secret",
        "TEKSCORE_DATA_ROOTS": str(home.parent),
        "TEKSCORE_CODE_SOURCES": str(home.parent),
    }


@contextmanager
def scheduler(home: Path, extra: dict[str, str] | None = None) -> Iterator[Server]:
    """A real `tekscore serve` on a free port (`extra`: more environment); its job processes
    are stopped afterwards."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = Server(
        [TEKSCORE, "serve", "--port", str(port)],
        port=port,
        env={**scheduler_env(home), **(extra or {})},
        log=home / "scheduler.log",
    )
    try:
        server.wait_ready("/readyz")
        yield server
    finally:
        server.stop()
        kill_job_processes(home)


def kill_job_processes(home: Path) -> None:
    """Stop any process left over whose command line names this run's home (none should be)."""
    marker = str(home)
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in proc.info["cmdline"] or []):
                print(f"  (left-over job process {proc.pid} killed)")
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


@contextmanager
def bare_server(home: Path) -> Iterator[Server]:
    port = free_port()
    server = Server(
        [sys.executable, __file__, "_bare", str(port)],
        port=port,
        env=scheduler_env(home),
        log=home / "bare.log",
    )
    try:
        server.wait_ready("/bare")
        yield server
    finally:
        server.stop()


def run_bare(port: int) -> None:
    """The baseline: one endpoint returning a small JSON object, behind a bearer-token dependency
    doing the scheduler's check (`HTTPBearer` + `role_of`), run by the scheduler's own
    `uvicorn.Config` (app swapped)."""
    import uvicorn
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    from scheduler.auth import role_of
    from scheduler.cli.serve import build_settings, uvicorn_config

    settings = build_settings(host="127.0.0.1", port=port, home=Path(os.environ["TEKSCORE_HOME"]))
    bearer = HTTPBearer(auto_error=False)

    # `async def`: FastAPI runs a plain `def` dependency in its thread pool (a thread hop per
    # request); the baseline is the cheapest FastAPI endpoint with a bearer-token check.
    async def auth(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # noqa: B008
        if credentials is None or role_of(settings.tokens(), credentials.credentials) is None:
            raise HTTPException(401)

    app = FastAPI()

    @app.get("/bare", dependencies=[Depends(auth)])
    async def bare() -> dict[str, Any]:
        return {"id": "j-abcdefghij", "state": "SUCCEEDED", "ok": True}

    config = uvicorn_config(settings)  # the scheduler's settings: httptools, uvloop, no access log
    config.app = app
    uvicorn.Server(config).run()


# --------------------------------------------------------------------------- load generator


def request_bytes(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    """Closed loop: `concurrency` keep-alive connections, each sending the next request as soon as
    its answer is read; warm-up excluded; `count` requests or `duration` seconds."""
    requests = [bytes.fromhex(r) for r in spec["requests"]]
    expect = spec["expect"]
    latencies: list[float] = []
    errors = 0
    state = {"next": 0}
    count = spec.get("count")
    warm_until = time.perf_counter() + spec["warmup"]
    stop_at = warm_until + spec["duration"]
    started = {"wall": 0.0, "cpu": 0.0}

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", spec["port"])
        try:
            while True:
                now = time.perf_counter()
                if count is None and now >= stop_at:
                    return
                if count is not None and state["next"] >= count:
                    return
                request = requests[state["next"] % len(requests)]
                state["next"] += 1
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                t1 = time.perf_counter()
                status = int(head[9:12])
                if status != expect:
                    errors += 1
                if count is not None or t0 >= warm_until:
                    latencies.append(t1 - t0)
        finally:
            writer.close()

    async def mark() -> None:
        await asyncio.sleep(max(0.0, warm_until - time.perf_counter()))
        started["wall"], started["cpu"] = time.perf_counter(), time.process_time()

    marker = asyncio.create_task(mark()) if count is None else None
    if count is not None:
        started["wall"], started["cpu"] = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    if marker is not None:
        await marker
    wall = time.perf_counter() - started["wall"]
    cpu = time.process_time() - started["cpu"]
    latencies.sort()
    return {
        "n": len(latencies),
        "p50": quantile(latencies, 0.50),
        "p99": quantile(latencies, 0.99),
        "errors": errors,
        "wall": wall,
        "client_cpu": cpu / wall,
    }


def run_load_worker(spec_path: str) -> None:
    import uvloop

    spec = json.loads(Path(spec_path).read_text())
    result = uvloop.run(_load(spec))
    Path(spec["out"]).write_text(json.dumps(result))


def load(
    server: Server,
    requests: list[bytes],
    *,
    concurrency: int,
    duration: float,
    expect: int = 200,
    count: int | None = None,
    warmup: float = 0.3,
    tmp: Path,
) -> dict[str, Any]:
    """Run the load generator in its own process; add the server's CPU use over the run."""
    spec = {
        "port": server.port,
        "requests": [r.hex() for r in requests],
        "concurrency": concurrency,
        "duration": duration,
        "warmup": warmup,
        "expect": expect,
        "count": count,
    }
    path, out = tmp / "load.json", tmp / "load-result.json"
    out.unlink(missing_ok=True)
    path.write_text(json.dumps({**spec, "out": str(out)}))
    proc = subprocess.Popen([sys.executable, __file__, "_load", str(path)])
    # Server CPU over (roughly) the measured window: from the end of the warm-up on.
    time.sleep(0.15 + (warmup if count is None else 0))
    cpu0, wall0 = server.cpu(), time.perf_counter()
    proc.wait(timeout=duration + 120)
    cpu1, wall1 = server.cpu(), time.perf_counter()
    if proc.returncode != 0:
        raise RuntimeError("load generator failed")
    result: dict[str, Any] = json.loads(out.read_text())
    result["server_cpu"] = (cpu1 - cpu0) / max(1e-9, wall1 - wall0)
    result["rps"] = result["n"] / result["wall"]
    return result


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds (errors summed)."""
    keys = ("p50", "p99", "rps", "client_cpu", "server_cpu", "wall", "n")
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in keys}
    out["errors"] = sum(r["errors"] for r in runs)
    return out


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


# --------------------------------------------------------------------------- part 1: API


def iris_folder(folder: Path, records: int) -> Path:
    """The iris example in `folder`: model trained there, `records` records, the two IR files."""
    from train import train, write_records  # type: ignore[import-not-found]

    folder.mkdir(parents=True, exist_ok=True)
    train(folder)
    write_records(folder / "input.jsonl", records)
    for name in ("model.yaml", "batch.yaml"):
        shutil.copy(ROOT / "examples" / "iris" / name, folder / name)
    return folder


def ir_files(folder: Path) -> dict[str, str]:
    return {str(folder / n): (folder / n).read_text() for n in ("model.yaml", "batch.yaml")}


TEMPLATE_ID = "j-template00"
TEMPLATE_LABELS = {"example": "iris", "team": "tTEAMPLACE", "run": "rRUNPLACE"}
TEMPLATE_NAME = "nightly NAMEPLACE"


async def write_template(home: Path, iris: Path) -> None:
    """One finished (SUCCEEDED) iris job written into the server's store by the server's own
    code (`prepare_job`, `SqliteStore.create` + 4 x `save`: its bundle, values and 5 events),
    with placeholders where the copies differ (id, labels, name)."""
    import ir
    from scheduler.jobs import prepare_job
    from scheduler.schemas import BackendInfo, EventPublic, FlowStatus, JobCreate, ReplicaStatus
    from scheduler.states import State
    from scheduler.stores.sqlite import SqliteStore

    store = await SqliteStore.open(home / "state.db")
    request = JobCreate(
        pipeline={"files": ir_files(iris)},
        base_dir=str(iris),
        name=TEMPLATE_NAME,
        labels=TEMPLATE_LABELS,
    )
    bundle, job, values = await prepare_job(
        request,
        job_id=TEMPLATE_ID,
        globals_=ir.load_globals(None),
        channels={},
        base_dir=iris,
        backend=lambda job_id: BackendInfo(kind="local", release=job_id),
    )
    at = datetime.now().astimezone() - timedelta(days=30)
    job = job.model_copy(update={"created_at": at})
    await store.create(
        job, bundle, EventPublic(at=at, state=State.PENDING, reason="Created"), values=values
    )
    steps = [
        (State.INSTALLING, "install", None),
        (State.RUNNING, "wait", None),
        (State.STOPPING, "finally", "Completed"),
        (State.SUCCEEDED, None, "Completed"),
    ]
    for n, (state, task, reason) in enumerate(steps, start=1):
        when = at + timedelta(seconds=n)
        update: dict[str, Any] = {"state": state, "task": task}
        if state == State.INSTALLING:
            update["started_at"] = when
        if state == State.SUCCEEDED:
            update.update(
                finished_at=when,
                reason="Completed",
                flows={
                    name: FlowStatus(
                        mode=f.mode,
                        state="COMPLETED",
                        records_in=150,
                        records_out=150,
                        shards_done=1,
                        replicas=[
                            ReplicaStatus(
                                index=0, state="COMPLETED", records_in=150, records_out=150
                            )
                        ],
                    )
                    for name, f in job.flows.items()
                },
            )
        job = job.model_copy(update=update)
        event = EventPublic(at=when, state=state, task=task, reason=reason)
        await store.save(job, event)  # as the server writes a transition
    await store.close()


def job_ids(count: int) -> list[str]:
    """`count` distinct random job ids of the server's form (`j-` + 10 base-32 characters)."""
    import base64

    ids: dict[str, None] = {}
    while len(ids) < count:
        raw = base64.b32encode(os.urandom(7 * (count - len(ids)))).decode().lower()
        for k in range(0, len(raw) - 9, 10):
            ids["j-" + raw[k : k + 10]] = None
            if len(ids) == count:
                break
    return list(ids)


def _pattern(text: str) -> str:
    """The template's text as a %-format with the placeholders as named fields."""
    out = text.replace("%", "%%").replace(TEMPLATE_ID, "%(id)s")
    out = out.replace("tTEAMPLACE", "%(team)s").replace("rRUNPLACE", "%(run)s")
    return out.replace("NAMEPLACE", "%(n)s")


def fill_store(home: Path, iris: Path, count: int, *, full: int, batch: int = 20_000) -> list[str]:
    """`count` SUCCEEDED iris jobs in the server's store before it starts: the template job
    written by the server's code (`write_template`), copied row by row with a new id, labels
    `team=t<i % 10>`, `run=r<i>`, name `nightly <i>`, by `executemany` in transactions of
    `batch` jobs: the job's row and labels for every job, its bundle and values and its 5
    events for the newest `full` (those tables are keyed by job id and not read by get or list;
    at 1,000,000 jobs they would be 6 of the 8 GB and most of the fill's time). Returns the
    ids, oldest first."""
    import sqlite3

    asyncio.run(write_template(home, iris))
    db = sqlite3.connect(home / "state.db", isolation_level=None)
    job = db.execute(
        "SELECT state, pipeline, labels, data, public FROM jobs WHERE id = ?", (TEMPLATE_ID,)
    ).fetchone()
    bundle = db.execute(
        "SELECT data, rendered FROM bundles WHERE id = ?", (TEMPLATE_ID,)
    ).fetchone()
    events = [
        r[0]
        for r in db.execute("SELECT data FROM events WHERE job_id = ? ORDER BY n", (TEMPLATE_ID,))
    ]
    assert job and bundle and len(events) == 5, "template job not written"
    db.execute("DELETE FROM jobs WHERE id = ?", (TEMPLATE_ID,))
    db.execute("DELETE FROM job_labels")
    db.execute("DELETE FROM bundles WHERE id = ?", (TEMPLATE_ID,))
    db.execute("DELETE FROM events WHERE job_id = ?", (TEMPLATE_ID,))
    db.execute("DELETE FROM sqlite_sequence")  # seq starts at 1 again
    labels_p, data_p, public_p = _pattern(job[2]), _pattern(job[3]), _pattern(job[4])
    bundle_p, rendered_p = _pattern(bundle[0]), _pattern(bundle[1])
    # no journal while filling (the WAL would write every page twice), WAL again at the end
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-262144")  # 256 MiB
    ids = job_ids(count)
    for first in range(0, count, batch):
        rows = []
        for i in range(first, min(count, first + batch)):
            rows.append({"id": ids[i], "team": f"t{i % 10}", "run": f"r{i}", "n": i})
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO jobs (seq, id, state, pipeline, labels, data, public)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (r["n"] + 1, r["id"], job[0], job[1], labels_p % r, data_p % r, public_p % r)
                for r in rows
            ],
        )
        db.executemany(
            "INSERT INTO job_labels (key, value, seq) VALUES (?, ?, ?)",
            [
                (key, value, r["n"] + 1)
                for r in rows
                for key, value in (("example", "iris"), ("team", r["team"]), ("run", r["run"]))
            ],
        )
        rows = [r for r in rows if r["n"] >= count - full]
        db.executemany(
            "INSERT INTO bundles (id, data, rendered) VALUES (?, ?, ?)",
            [(r["id"], bundle_p % r, rendered_p % r) for r in rows],
        )
        db.executemany(
            "INSERT INTO events (job_id, data) VALUES (?, ?)",
            [(r["id"], e) for r in rows for e in events],
        )
        db.execute("COMMIT")
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    return ids


def print_row(name: str, conns: int, r: dict[str, Any], bare: dict[str, Any] | None) -> None:
    ratio_p50 = f"{r['p50'] / bare['p50']:.2f}x" if bare else "-"
    ratio_rps = f"{r['rps'] / bare['rps']:.2f}x" if bare else "-"
    print(
        f"  {name:<34} {conns:>5} {r['p50'] * 1e3:>8.2f} {r['p99'] * 1e3:>8.2f} {r['rps']:>8.0f}"
        f" {ratio_p50:>8} {ratio_rps:>8} {r['client_cpu']:>6.0%} {r['server_cpu']:>6.0%}"
        + (f"  ({r['errors']} bad statuses!)" if r["errors"] else "")
    )


def api_bench(tmp: Path, iris: Path, args: argparse.Namespace) -> list[str]:
    verdicts: list[str] = []
    home = tmp / "api-home"
    home.mkdir()
    t = time.perf_counter()
    full = min(args.jobs, args.full_jobs)
    ids = fill_store(home, iris, args.jobs, full=full)
    size = (home / "state.db").stat().st_size
    print(
        f"store filled directly (one job written by SqliteStore.create/save, copied with new "
        f"ids by executemany; not the API) with {len(ids):,} SUCCEEDED iris jobs, the newest "
        f"{full:,} with their bundle, values and 5 events, before the server started: "
        f"{time.perf_counter() - t:.1f} s, state.db {size / 2**30:.2f} GiB"
    )
    rng = random.Random(7)
    get_requests = [
        request_bytes("GET", f"/api/v1/jobs/{rng.choice(ids)}") for _ in range(min(5000, len(ids)))
    ]
    endpoints: list[tuple[str, list[bytes]]] = [
        ("GET /api/v1/jobs/{id} (random)", get_requests),
        ("GET /api/v1/jobs?limit=50", [request_bytes("GET", "/api/v1/jobs?limit=50")]),
        (
            "  ... &label=team=t3 (1 in 10)",
            [request_bytes("GET", "/api/v1/jobs?limit=50&label=team%3Dt3")],
        ),
        (
            f"  ... &label=run=r7 (1 in {args.jobs:,})",
            [request_bytes("GET", "/api/v1/jobs?limit=50&label=run%3Dr7")],
        ),
    ]
    header = (
        f"  {'endpoint':<34} {'conns':>5} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}"
        f" {'p50/bare':>8} {'rps/bare':>8} {'client':>6} {'server':>6}"
    )
    samples: dict[tuple[str, int], list[dict[str, Any]]] = {}
    conns = (1, args.concurrency)
    # Both servers up at once (the idle one costs nothing), measured in alternation over a few
    # rounds, the median of the rounds kept: a busy moment of the machine hits them alike.
    with bare_server(home) as bare, scheduler(home) as server:
        listed = httpx.get(f"{server.url}/api/v1/jobs?limit=1", headers=AUTH).json()
        assert listed["items"] and listed["items"][0]["state"] == "SUCCEEDED", listed
        plan = [("bare", bare, [request_bytes("GET", "/bare")])]
        plan += [(name, server, reqs) for name, reqs in endpoints]
        for _ in range(args.rounds):
            for name, target, reqs in plan:
                for c in conns:
                    samples.setdefault((name, c), []).append(
                        load(target, reqs, concurrency=c, duration=args.duration, tmp=tmp)
                    )
        results = {key: median_run(runs) for key, runs in samples.items()}
        body = json.dumps(
            {"pipeline": {"files": {"small.yaml": SMALL_PIPELINE}}, "base_dir": str(tmp)}
        ).encode()
        isolated = isolated_starts(server, body, min(5, args.starts))
        burst = load(
            server,
            [request_bytes("POST", "/api/v1/jobs", body)],
            concurrency=1,
            duration=0,
            count=args.starts - len(isolated),
            expect=201,
            tmp=tmp,
        )
        started = wait_all_finished(server, args.starts)
    print(
        f"\nAPI latency, {len(ids):,} jobs stored; median of {args.rounds} rounds of "
        f"{args.duration:g} s each; client = load generator process CPU, server = scheduler/bare "
        "process CPU (a core is 100%)"
    )
    print(header)
    for c in conns:
        print_row("bare FastAPI endpoint (baseline)", c, results[("bare", c)], None)
    for name, _ in endpoints:
        for c in conns:
            print_row(name, c, results[(name, c)], results[("bare", c)])
    print(
        f"  {'POST /api/v1/jobs, isolated':<34} {1:>5} {quantile(isolated, 0.5) * 1e3:>8.2f}"
        f" {max(isolated) * 1e3:>8.2f}        -"
        f" {quantile(isolated, 0.5) / results[('bare', 1)]['p50']:>7.0f}x"
        f"   ({len(isolated)} starts, each after the previous job ended; p99 column = max)"
    )
    print_row(f"POST /api/v1/jobs, burst of {burst['n']}", 1, burst, results[("bare", 1)])
    print(
        f"  the {args.starts} started jobs (inline -> map -> discard, one flow process each): "
        f"{started}; a burst start competes for the CPU with the start-up of the jobs before it"
    )
    bare16 = results[("bare", args.concurrency)]
    print(
        f"  load generator check (bare, {args.concurrency} conns): "
        f"client {bare16['client_cpu']:.0%}"
        f" of a core, server {bare16['server_cpu']:.0%}: "
        + (
            "the client is not the bottleneck"
            if bare16["client_cpu"] < 0.5
            else "the CLIENT may be the bottleneck"
        )
        + ("" if bare16["server_cpu"] > 0.85 else " (server below a full core: machine busy?)")
    )
    bare_p50 = results[("bare", 1)]["p50"]
    for name, _ in endpoints[:3]:
        ratio = results[(name, 1)]["p50"] / bare_p50
        verdict = "ok" if ratio <= TARGET_RATIO else "MISSED"
        verdicts.append(f"{name.strip()}: p50 {ratio:.2f}x bare (target <= 2x): {verdict}")
    return verdicts


def isolated_starts(
    server: Server, body: bytes, count: int, waits: list[float] | None = None
) -> list[float]:
    """Start latencies of `count` jobs, each started once the previous one ended (quiet server);
    `waits` gets the server's run-queue wait during each `POST` (`run_queue_wait`)."""
    latencies = []
    headers = {**AUTH, "Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        for _ in range(count):
            waited = run_queue_wait(server.proc.pid) if waits is not None else 0.0
            t0 = time.perf_counter()
            answer = client.post("/api/v1/jobs", content=body)
            latencies.append(time.perf_counter() - t0)
            if waits is not None:
                waits.append(run_queue_wait(server.proc.pid) - waited)
            assert answer.status_code == 201, answer.text
            job_id = answer.json()["id"]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                state = client.get(f"/api/v1/jobs/{job_id}").json()["state"]
                if state in ("SUCCEEDED", "FAILED", "CANCELLED"):
                    break
                time.sleep(0.1)
    return sorted(latencies)


def wait_all_finished(server: Server, count: int, timeout: float = 90) -> str:
    """Wait for the jobs the start benchmark launched (the only unfinished ones) to end."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
        while True:
            items = client.get("/api/v1/jobs", params={"limit": count}).json()["items"]
            states = [j["state"] for j in items]
            if all(s in ("SUCCEEDED", "FAILED", "CANCELLED") for s in states):
                return ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
            if time.monotonic() > deadline:
                return "still running after 90 s: " + ", ".join(sorted(set(states)))
            time.sleep(0.2)


# --------------------------------------------------------------------------- part 3: start


def http_pipeline(port: int) -> str:
    """A job that keeps running: one streaming flow serving `POST /score` (http source, a map
    step, discard sink; no model), i.e. one flow process reporting progress every 2 s."""
    return f"""\
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {{name: bench-running}}
spec:
  dataChannels:
    - {{name: requests, direction: source, type: http, config: {{port: {port}}}}}
    - {{name: nowhere, direction: sink, type: discard}}
  scoringFlows:
    - name: serve
      mode: streaming
      source: requests
      sink: nowhere
      steps: [{{type: map, set: {{seen: true}}}}]
"""


def running_jobs(
    server: Server, tmp: Path, count: int, pipeline: Callable[[], str] | None = None
) -> list[str]:
    """Start `count` jobs of `pipeline()` (default: never-ending `http_pipeline`s) and wait
    until every one is RUNNING."""
    ids = []
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
        for _ in range(count):
            text = pipeline() if pipeline else http_pipeline(free_port())
            body = {
                "pipeline": {"files": {"running.yaml": text}},
                "base_dir": str(tmp),
                "labels": {"bench": "running"},
            }
            answer = client.post("/api/v1/jobs", json=body)
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
        deadline = time.monotonic() + 180
        while True:
            states = [client.get(f"/api/v1/jobs/{i}").json()["state"] for i in ids]
            if all(s == "RUNNING" for s in states):
                return ids
            stuck = [s for s in states if s not in ("PENDING", "INSTALLING", "RUNNING")]
            if time.monotonic() > deadline or stuck:
                raise RuntimeError(f"running jobs did not all reach RUNNING: {states}")
            time.sleep(0.2)


def cancel_all(server: Server, ids: list[str]) -> None:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
        for job_id in ids:
            client.post(f"/api/v1/jobs/{job_id}/cancel")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = [client.get(f"/api/v1/jobs/{i}").json()["state"] for i in ids]
            if all(s in ("SUCCEEDED", "FAILED", "CANCELLED") for s in states):
                return
            time.sleep(0.2)


def start_latencies(
    server: Server, tmp: Path, count: int, waits: list[float] | None = None
) -> list[float]:
    """`count` timed starts of the small inline pipeline, each once the previous job ended
    (`waits`: see `isolated_starts`)."""
    body = json.dumps(
        {"pipeline": {"files": {"small.yaml": SMALL_PIPELINE}}, "base_dir": str(tmp)}
    ).encode()
    return isolated_starts(server, body, count, waits)


def start_bench(tmp: Path, args: argparse.Namespace) -> list[str]:
    """Start latency (POST /api/v1/jobs to 201) with nothing running and with `--running` jobs
    running on each server, one server per pre-processing mode of `--modes`, all up at once and
    measured in alternation (start on A, start on B, ...), so a busy moment of the machine hits
    every mode alike."""
    verdicts: list[str] = []
    modes = args.modes.split(",")
    quiet: dict[str, list[float]] = {m: [] for m in modes}
    busy: dict[str, list[float]] = {m: [] for m in modes}
    loads: dict[str, str] = {}
    with ExitStack() as stack:
        servers = {}
        for mode in modes:
            extra = {
                "TEKSCORE_MAX_RUNNING_JOBS": str(args.running + 8),
                "TEKSCORE_PREPROCESS_WORKERS": "0" if mode == "thread" else mode.split("=")[-1],
            }
            home = tmp / f"start-home-{mode.replace('=', '')}"
            servers[mode] = stack.enter_context(scheduler(home, extra))

        def starts(into: dict[str, list[float]]) -> None:
            """Once every server's warm spares are ready, `--starts` starts on each, alternating."""
            for mode in modes:
                settle(servers[mode])
            for _ in range(args.starts):
                for mode in modes:
                    into[mode] += start_latencies(servers[mode], tmp, 1)

        loads["nothing running"] = uptime_short()
        starts(quiet)
        ids = {mode: running_jobs(servers[mode], tmp, args.running) for mode in modes}
        try:
            loads["running"] = uptime_short()
            starts(busy)
            loads["running"] += " -> " + uptime_short()
        finally:
            for mode in modes:
                cancel_all(servers[mode], ids[mode])
    print(
        f"\nStart latency, POST /api/v1/jobs -> 201 (inline -> map -> discard; {args.starts} "
        f"starts per row, each once the previous job ended; the servers of every mode up at once,"
        f" started in alternation; timed once each server's warm spares were ready after its "
        f"start-up and after its running jobs came up), ms; running jobs: {args.running} "
        "streaming http flows per server (one process each, reporting every 2 s)"
    )
    print(f"  {'pre-processing':<14} {'while':<20} {'p50':>8} {'p99':>8} {'max':>8}")
    for when, table in (("nothing running", quiet), (f"{args.running} jobs running", busy)):
        for mode in modes:
            lat = sorted(table[mode])
            print(
                f"  {mode:<14} {when:<20} {quantile(lat, 0.5) * 1e3:>8.1f} "
                f"{quantile(lat, 0.99) * 1e3:>8.1f} {max(lat) * 1e3:>8.1f}"
            )
    print(
        f"  load average: {loads['nothing running']} (nothing running), "
        f"{loads['running']} (jobs running)"
    )
    for mode in modes:
        p99 = quantile(sorted(busy[mode]), 0.99) * 1e3
        verdict = "ok" if p99 < TARGET_START_MS else "MISSED"
        verdicts.append(
            f"start p99 with {args.running} jobs running ({mode}): {p99:.1f} ms, "
            f"{p99 / (quantile(sorted(quiet[mode]), 0.99) * 1e3):.1f}x nothing running "
            f"(target < {TARGET_START_MS:g} ms): {verdict}"
        )
    return verdicts


BURN = """\
import time


def transform(records):
    began = time.process_time()
    while time.process_time() - began < 0.2:
        pass
    return records
"""


def busy_pipeline(records: int = 2000) -> str:
    """A batch job that keeps one core busy for `records` x 0.2 s of CPU: one record per batch
    through a python step burning 0.2 s of CPU (`BURN`)."""
    rows = ", ".join(f'{{"id": {i}}}' for i in range(records))
    return f"""\
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {{name: bench-busy}}
spec:
  dataChannels:
    - {{name: rows, direction: source, type: inline, config: {{records: [{rows}]}}}}
    - {{name: nowhere, direction: sink, type: discard}}
  scoringFlows:
    - name: burn
      source: rows
      sink: nowhere
      batchSize: 1
      concurrency: 1
      steps: [{{type: python, uri: file://burn.py}}]
"""


def run_queue_wait(pid: int) -> float:
    """Seconds the threads of process `pid` have waited on a run queue (ready, no core free)."""
    waited = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            waited += int((task / "schedstat").read_text().split()[1])
    return waited / 1e9


def busy_bench(tmp: Path, args: argparse.Namespace) -> list[str]:
    """Start latency while `--busy` CPU-bound jobs run, their processes at the server's priority
    and at the default job nice value: one server after the other, `--starts` starts each."""
    (tmp / "burn.py").write_text(BURN)
    busy = busy_pipeline()
    rows: dict[str, dict[str, Any]] = {}
    for nice in ("0", "default"):
        extra = {"TEKSCORE_MAX_RUNNING_JOBS": str(args.busy + 8)}
        if nice == "0":
            extra["TEKSCORE_JOB_NICE"] = "0"
        with scheduler(tmp / f"busy-home-{nice}", extra) as server:
            settle(server)
            ids = running_jobs(server, tmp, args.busy, lambda: busy)
            settle(server)
            waits: list[float] = []
            load = uptime_short()
            latencies = start_latencies(server, tmp, args.starts, waits)
            load += " -> " + uptime_short()
            cancel_all(server, ids)
        latencies.sort()
        rows[nice] = {
            "p50": quantile(latencies, 0.5) * 1e3,
            "p99": quantile(latencies, 0.99) * 1e3,
            "max": latencies[-1] * 1e3,
            "wait": statistics.median(waits) * 1e3,
            "wait99": quantile(sorted(waits), 0.99) * 1e3,
            "load": load,
        }
    print(
        f"\nStart latency while {args.busy} jobs keep the cores busy (each a batch flow burning "
        f"CPU in a python step), {args.starts} starts per row, ms; run-queue wait: the server's "
        "threads' time ready to run but waiting for a core during the POST (summed over its "
        "threads), p50 and p99"
    )
    print(
        f"  {'job processes at':<28} {'p50':>7} {'p99':>7} {'max':>7} {'wait p50':>9} "
        f"{'wait p99':>9}  load"
    )
    for nice, label in (("0", "server's priority (nice 0)"), ("default", "default job nice")):
        r = rows[nice]
        print(
            f"  {label:<28} {r['p50']:>7.1f} {r['p99']:>7.1f} {r['max']:>7.1f} "
            f"{r['wait']:>9.1f} {r['wait99']:>9.1f}  {r['load']}"
        )
    ratio = rows["0"]["p99"] / rows["default"]["p99"]
    verdict = "ok" if rows["default"]["p99"] < TARGET_START_MS else "MISSED"
    return [
        f"start p99 with {args.busy} CPU-bound jobs: {rows['default']['p99']:.1f} ms at the "
        f"default job nice, {rows['0']['p99']:.1f} ms at nice 0 ({ratio:.1f}x) "
        f"(target < {TARGET_START_MS:g} ms): {verdict}"
    ]


def settle(server: Server, timeout: float = 180) -> None:
    """Wait until the server's warm spares are ready again (its log has a `warm spares ready`
    after the last process handed to a spare): a burst of job starts ends with a new set of
    spares importing scikit-learn for seconds, work of those starts, not of the next one."""
    if os.environ.get("TEKSCORE_WARM_RUNTIMES") == "0":
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = log_events(server.log)
        ready = [ts(e["timestamp"]) for e in events if e.get("event") == "warm spares ready"]
        taken = [
            ts(e["timestamp"])
            for e in events
            if e.get("event") == "process started" and e.get("warm")
        ]
        if ready and (not taken or max(ready) > max(taken)):
            return
        time.sleep(0.2)
    print(f"  (warm spares not ready after {timeout:.0f} s; measuring anyway)")


def uptime_short() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------- part 2: job


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def log_events(path: Path, job_id: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        wanted = job_id is None or (isinstance(data, dict) and data.get("job_id") == job_id)
        if isinstance(data, dict) and "timestamp" in data and wanted:
            out.append(data)
    return out


def first(events: list[dict[str, Any]], name: str, **match: Any) -> float | None:
    for e in events:
        if e.get("event") == name and all(e.get(k) == v for k, v in match.items()):
            return ts(e["timestamp"])
    return None


async def first_scored(job_dir: Path, deadline: float) -> float | None:
    """When the flow's `/metrics` first shows records_out > 0 (polled every 10 ms)."""
    table = job_dir / "processes.json"
    port = None
    async with httpx.AsyncClient(timeout=1, trust_env=False) as client:
        while time.time() < deadline:
            if port is None:
                try:
                    records = json.loads(table.read_text())["processes"]
                    port = next((r["port"] for r in records if r["kind"] == "flow"), None)
                except (OSError, ValueError, KeyError):
                    pass
            else:
                try:
                    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                    for line in text.splitlines():
                        if line.startswith("tekscore_flow_records_out_total{") and (
                            float(line.rsplit(" ", 1)[1]) > 0
                        ):
                            return time.time()
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.01)
    return None


async def one_job(server: Server, home: Path, iris: Path) -> dict[str, float]:
    shutil.rmtree(iris / "output", ignore_errors=True)
    body = {"pipeline": {"files": ir_files(iris)}, "base_dir": str(iris)}
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=30) as client:
        t0 = time.time()
        answer = await client.post("/api/v1/jobs", json=body)
        t_resp = time.time()
        assert answer.status_code == 201, answer.text
        job_id = answer.json()["id"]
        deadline = t0 + 90
        scored = asyncio.create_task(first_scored(home / "jobs" / job_id, deadline))
        while True:
            job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
            if job["state"] in ("SUCCEEDED", "FAILED", "CANCELLED") or time.time() > deadline:
                break
            await asyncio.sleep(0.05)
        t_first = scored.result() if scored.done() else None
        scored.cancel()
        if job["state"] != "SUCCEEDED":
            raise RuntimeError(f"job {job_id} ended {job['state']}: {job.get('message')}")
        events = (await client.get(f"/api/v1/jobs/{job_id}/events")).json()
    at = {e["state"]: ts(e["at"]) for e in events}
    sched = log_events(home / "scheduler.log", job_id)
    job_dir = home / "jobs" / job_id
    svc = log_events(job_dir / "services" / "iris.log")
    flow = log_events(job_dir / "flows" / "classify.log")
    lines = sum(1 for _ in (iris / "output" / "scored.jsonl").open())
    assert lines == args_records, f"{lines} records scored, expected {args_records}"
    marks = {
        "request sent": t0,
        "201 answered": t_resp,
        "INSTALLING": at["INSTALLING"],
        "service spawned": first(sched, "process started", process="service iris"),
        "service: python up (1st log line)": first(svc, "serve_model"),
        "service: model loading": first(svc, "model_loading"),
        "service: model ready": first(svc, "model_ready"),
        "scheduler saw service ready": first(sched, "service ready"),
        "flow spawned": first(sched, "process started", process="flow classify"),
        "RUNNING": at["RUNNING"],
        "flow: python up (1st log line)": ts(flow[0]["timestamp"]) if flow else None,
        "flow: activated": first(flow, "flow activated"),
        "first record scored (flow /metrics)": t_first,
        "flow: sinks closed (all scored)": first(flow, "sinks closed"),
        "flow: completion reported": first(flow, "completion reported"),
        "STOPPING": at["STOPPING"],
        "service stop signalled": first(sched, "process stopping", process="service iris"),
        "uninstalled": first(sched, "job uninstalled"),
        "SUCCEEDED": at["SUCCEEDED"],
    }
    return {k: (v - t0 if v is not None else float("nan")) for k, v in marks.items()}


args_records = 10_000  # set by main


def job_bench(tmp: Path, iris: Path, args: argparse.Namespace) -> list[str]:
    home = tmp / "job-home"
    runs: list[dict[str, float]] = []
    with scheduler(home) as server:
        for _ in range(args.repeat):
            runs.append(asyncio.run(one_job(server, home, iris)))
            time.sleep(0.5)
    headline = [
        "201 answered",
        "INSTALLING",
        "RUNNING",
        "first record scored (flow /metrics)",
        "SUCCEEDED",
    ]
    print(
        f"\nIris batch job, {args.records:,} records, {args.repeat} runs (seconds since the "
        "start request was sent; the time stamps are the job's events, logs, and our own clock)"
    )
    print(
        f"  {'phase':<40}"
        + "".join(f" {'run ' + str(i + 1):>8}" for i in range(len(runs)))
        + f" {'best':>8} {'median':>8}   step (median)"
    )
    previous = 0.0
    for key in runs[0]:
        values = [r[key] for r in runs]
        best, median = min(values), statistics.median(values)
        star = "*" if key in headline else " "
        print(
            f" {star}{key:<40}"
            + "".join(f" {v:>8.3f}" for v in values)
            + f" {best:>8.3f} {median:>8.3f}   +{median - previous:.3f}"
        )
        previous = median
    print(
        "  (* = the phases the target is about; the others come from the service, flow and "
        "scheduler logs)"
    )
    totals = [r["SUCCEEDED"] for r in runs]
    best, median = min(totals), statistics.median(totals)
    verdict = "ok" if median < TARGET_JOB_SECONDS else "MISSED"
    return [
        f"iris job, {args.records:,} records: start -> SUCCEEDED best {best:.2f} s, median "
        f"{median:.2f} s (target < {TARGET_JOB_SECONDS:g} s): {verdict}"
    ]


# --------------------------------------------------------------------------- main


def main() -> None:
    global args_records
    parser = argparse.ArgumentParser(description="scheduling server benchmark")
    parser.add_argument("--part", choices=["api", "job", "start", "busy", "all"], default="all")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs stored for the API part")
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per API measurement")
    parser.add_argument("--rounds", type=int, default=3, help="API measurement rounds (median)")
    parser.add_argument("--concurrency", type=int, default=16, help="connections for req/s")
    parser.add_argument("--starts", type=int, default=20, help="POST /api/v1/jobs to time")
    parser.add_argument("--records", type=int, default=10_000, help="iris records to score")
    parser.add_argument("--repeat", type=int, default=3, help="iris job runs")
    parser.add_argument(
        "--full-jobs",
        type=int,
        default=100_000,
        help="the newest jobs stored with their bundle, values and events (API part)",
    )
    parser.add_argument("--running", type=int, default=12, help="jobs running (start part)")
    parser.add_argument("--busy", type=int, default=4, help="CPU-bound jobs (busy part)")
    parser.add_argument(
        "--modes",
        default="thread,pool=1",
        help="pre-processing modes of the start part: thread (TEKSCORE_PREPROCESS_WORKERS=0), "
        "pool=N (N worker processes)",
    )
    args = parser.parse_args()
    args_records = args.records
    print(uptime())
    if os.getloadavg()[0] > 1.0:
        print("(the machine is busy: numbers will be noisy; rerun when the load average is < 1)")
    print(f"{os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    verdicts: list[str] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tekscore-bench-") as name:
        tmp = Path(name)
        iris = (
            iris_folder(tmp / "iris", args.records) if args.part in ("api", "job", "all") else tmp
        )
        if args.part in ("api", "all"):
            verdicts += api_bench(tmp, iris, args)
        if args.part in ("job", "all"):
            verdicts += job_bench(tmp, iris, args)
        if args.part in ("start", "all"):
            verdicts += start_bench(tmp, args)
        if args.part in ("busy", "all"):
            verdicts += busy_bench(tmp, args)
    print()
    for line in verdicts:
        print(line)
    print(f"({time.perf_counter() - began:.0f} s; {uptime()})")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_bare":
        run_bare(int(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "_load":
        run_load_worker(sys.argv[2])
    else:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        main()
