"""Benchmark: tekscore's scoring service against MLServer 1.7.1 (mlserver-sklearn) and KServe
0.21's Python model server on the iris example model, with the same records, at batch 1 and
batch 256, with 1 and 16 connections.

What is compared (printed with the results):
- ours on the records endpoint (`POST /v2/models/iris/records`): every record gets
  `prediction` and `proba_<class>` x3 (4 fields; the response is ~10x the peers'), and, for
  information, on OIP `infer` (4 output tensors);
- MLServer on OIP `infer`, its default `predict` output only;
- KServe: `kserve.ModelServer` with its default settings (REST v2, one worker, latency logging
  on) serving a `kserve.Model` that loads the same joblib and answers `predict` (the labels).
All run with their default settings, one server process each, on loopback, free ports. Ours
scores concurrent requests that are ready together with one model call (its default for
row-wise scikit-learn models); a second server of ours with `--no-coalesce` shows the records
endpoint without it. MLServer's adaptive batching is off by default (`max_batch_size` 0);
`--mlserver-batching` adds a run of MLServer with it on, for information.

MLServer and KServe live in their own venvs (`bench/.venv-mlserver`, `bench/.venv-kserve`; their
pins clash with ours), created here when missing by `bench/venvs.py`, and run offline (MLServer
from a `settings.json`: host 127.0.0.1, gRPC/metrics on free ports, parallel_workers 0 =
inference in the server process, its fastest setting for a small model, debug off).

The load generator is a minimal keep-alive HTTP/1.1 client on asyncio streams with
`--connections` concurrent connections, the same for every server; every loop is bounded by a
request count. Its own ceiling is measured first against a canned-answer server (a raw asyncio
protocol answering our batch-256 response bytes without any work) and printed. The machine's
load average is printed with each round: on a shared machine, run it when the load is low.
Within a round, each server's requests for one batch size and connection count are cut into
`--slices` slices run in turn (A B C A B C ...), so that a burst of load from other processes
hits every server alike. `--rounds` repeats the whole set; each ratio is reported per round and
as the median, against the better of MLServer and KServe (target: >= 2x its rows/s, p99 no
worse). `--before PATH` adds another checkout's `tekscore` (e.g. main's) serving the records
endpoint, for a before/after ratio in the same run.

Run: `.venv/bin/python bench/scoring_service.py [--rounds 3] [--requests-b1 2000]
[--requests-b256 600] [--connections 1,16] [--batches 1,256] [--slices 10]
[--before /work/main/.venv/bin/tekscore] [--mlserver-batching] [--chart PATH]`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from siblings import sibling
from venvs import ensure_venv

from common.ports import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def ensure_mlserver() -> Path:
    """The mlserver executable, creating its venv first when missing."""
    return ensure_venv("mlserver") / "mlserver"


def train_model(folder: Path) -> Path:
    spec = importlib.util.spec_from_file_location("iris_train", ROOT / "examples/iris/train.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path: Path = module.train(folder)
    return path


def make_records(count: int) -> list[dict[str, float]]:
    spec = importlib.util.spec_from_file_location("iris_train", ROOT / "examples/iris/train.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows: list[dict[str, Any]] = module.make_records(count)
    return [{f: r[f] for f in FEATURES} for r in rows]


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} not ready after {timeout}s")


def start_ours(
    folder: Path, model: Path, extra: tuple[str, ...] = (), exe: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = {
        "name": "iris",
        "runtime": "python",
        "models": [
            {
                "name": "iris",
                "type": "sklearn",
                "uri": model.as_uri(),
                "schema": {"input": [{"name": f, "type": "double"} for f in FEATURES]},
            }
        ],
    }
    (folder / "ours.json").write_text(json.dumps(config))
    exe = exe or Path(sys.executable).parent / "tekscore"
    proc = subprocess.Popen(
        [
            str(exe),
            "serve-model",
            "--config",
            str(folder / "ours.json"),
            "--port",
            str(port),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=(folder / f"ours{''.join(extra)}-{port}.log").open("wb"),
        env={**os.environ, "TEKSCORE_LOG_LEVEL": "warning"},
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return proc, url


def start_mlserver(
    folder: Path, model: Path, exe: Path, batching: dict[str, Any] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    repo = folder / ("mlserver-batching" if batching else "mlserver")
    (repo / "iris").mkdir(parents=True)
    (repo / "iris" / "model.joblib").write_bytes(model.read_bytes())
    (repo / "iris" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "iris",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
                **(batching or {}),
            }
        )
    )
    return serve_repository(repo, exe)


def serve_repository(
    repo: Path, exe: Path, timeout: float = 120.0
) -> tuple[subprocess.Popen[bytes], str]:
    """`mlserver start` on a model repository (one folder per model with its
    model-settings.json): loopback, free ports, parallel_workers 0, debug off."""
    port = free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": 0,
        "debug": False,
    }
    (repo / "settings.json").write_text(json.dumps(settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = f"{exe.parent}:{env.get('PATH', '')}"
    proc = subprocess.Popen(
        [str(exe), "start", str(repo)],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=(repo / "mlserver.log").open("wb"),
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc, timeout)
    return proc, url


KSERVE_SERVER = """
import sys
import uuid
import joblib, numpy as np
import kserve
from kserve import InferOutput, InferRequest, InferResponse

class Iris(kserve.Model):
    def __init__(self, name, path):
        super().__init__(name)
        self.path = path
        self.load()

    def load(self):
        self.model = joblib.load(self.path)
        self.ready = True

    def predict(self, payload, headers=None):
        x = payload.inputs[0].as_numpy()
        labels = self.model.predict(x).astype(object)
        out = InferOutput(name="predict", shape=list(labels.shape), datatype="BYTES")
        out.set_data_from_numpy(labels, binary_data=False)
        rid = payload.id or str(uuid.uuid4())
        return InferResponse(model_name=self.name, infer_outputs=[out], response_id=rid)

port, grpc_port, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
kserve.ModelServer(http_port=port, grpc_port=grpc_port, enable_grpc=False).start(
    [Iris("iris", path)]
)
"""


def start_kserve(folder: Path, model: Path) -> tuple[subprocess.Popen[bytes], str]:
    """KServe's Python model server (`kserve.ModelServer`, its defaults, REST v2) serving a
    `kserve.Model` that loads the same joblib and answers `predict` (the labels, as MLServer)."""
    python = ensure_venv("kserve") / "python"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    proc = subprocess.Popen(
        [str(python), "-c", KSERVE_SERVER, str(port), str(free_port()), str(model)],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=(folder / "kserve.log").open("wb"),
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return proc, url


@dataclass
class Result:
    requests: int
    rows: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _connection(
    host: str, port: int, request: bytes, count: int, latencies: list[float], check: bytes
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(count):
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != b"200" or check not in body:
                raise SystemExit(f"bad answer {status!r}: {body[:200]!r}")
    finally:
        writer.close()
        await writer.wait_closed()


def _request(url: str, path: str, body: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _drive(
    url: str, request: bytes, n: int, connections: int, latencies: list[float], check: bytes
) -> None:
    """`n` requests over `connections` keep-alive connections (each its share, at least 1)."""
    host, port = url.removeprefix("http://").split(":")

    async def main() -> None:
        per = max(1, n // connections)
        await asyncio.gather(
            *(
                _connection(host, int(port), request, per, latencies, check)
                for _ in range(connections)
            )
        )

    asyncio.run(main())


def run_load(
    url: str, path: str, body: bytes, *, requests: int, connections: int, rows: int, check: bytes
) -> Result:
    request = _request(url, path, body)
    latencies: list[float] = []
    _drive(url, request, max(connections, requests // 10), connections, latencies, check)
    latencies.clear()
    started = time.perf_counter()
    _drive(url, request, requests, connections, latencies, check)
    seconds = time.perf_counter() - started
    return Result(len(latencies), len(latencies) * rows, seconds, latencies)


def run_interleaved(
    targets: list[tuple[str, str, bytes, bytes]],
    *,
    requests: int,
    connections: int,
    rows: int,
    slices: int,
) -> dict[str, Result]:
    """Every target's load cut into `slices` slices run in turn (A B C A B C ...), so that a
    burst of load from other processes hits every server alike. Targets are
    `(name, url + path, body, check)`; each gets `requests` requests in all (after a warm-up)."""
    requests_of = {}
    for name, address, body, check in targets:
        url, _, path = address.partition("/v2/")
        requests_of[name] = (url, _request(url, "/v2/" + path, body), check)
        _drive(url, requests_of[name][1], max(connections, requests // 10), connections, [], check)
    latencies: dict[str, list[float]] = {name: [] for name in requests_of}
    seconds = dict.fromkeys(requests_of, 0.0)
    per_slice = max(connections, requests // slices)
    for _ in range(max(1, requests // per_slice)):
        for name, (url, request, check) in requests_of.items():
            started = time.perf_counter()
            _drive(url, request, per_slice, connections, latencies[name], check)
            seconds[name] += time.perf_counter() - started
    return {
        name: Result(len(lat), len(lat) * rows, seconds[name], lat)
        for name, lat in latencies.items()
    }


def bodies(batch: int) -> tuple[bytes, bytes, bytes]:
    records = make_records(batch)
    matrix = [[r[f] for f in FEATURES] for r in records]
    records_body = json.dumps(records).encode()
    infer = {
        "inputs": [{"name": "predict", "shape": [batch, 4], "datatype": "FP64", "data": matrix}]
    }
    infer_body = json.dumps(infer).encode()
    return records_body, infer_body, infer_body


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


CANNED_SERVER = """
import asyncio, sys
port, answer = int(sys.argv[1]), open(sys.argv[2], "rb").read()
class Canned(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        while (end := self.buffer.find(b"\\r\\n\\r\\n")) >= 0:
            length = 0
            for line in self.buffer[:end].split(b"\\r\\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(answer)
async def main():
    server = await asyncio.get_running_loop().create_server(Canned, "127.0.0.1", port)
    await server.serve_forever()
asyncio.run(main())
"""


def generator_ceiling(folder: Path, request_body: bytes, answer_body: bytes, args: Any) -> Result:
    """The load generator against a server that answers instantly with the given bytes."""
    head = (
        f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(answer_body)}"
    )
    (folder / "canned.bin").write_bytes(head.encode() + b"\r\n\r\n" + answer_body)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", CANNED_SERVER, str(port), str(folder / "canned.bin")]
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("canned server did not start") from None
                time.sleep(0.05)
        return run_load(
            f"http://127.0.0.1:{port}",
            "/v2/models/iris/records",
            request_body,
            requests=args.requests_b256 * 4,
            connections=args.connections,
            rows=256,
            check=b"prediction",
        )
    finally:
        stop(proc)


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


PEERS = ("mlserver infer", "kserve infer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests-b1", type=int, default=2000)
    parser.add_argument("--requests-b256", type=int, default=600)
    parser.add_argument(
        "--connections", default="1,16", help="comma-separated connection counts (1,16)"
    )
    parser.add_argument(
        "--mlserver-batching",
        action="store_true",
        help="also run MLServer with adaptive batching (max_batch_size 8, max_batch_time 1 ms)",
    )
    parser.add_argument(
        "--slices",
        type=int,
        default=10,
        help="each server's requests of a round are cut into this many slices, run in turn",
    )
    parser.add_argument("--batches", default="1,256", help="comma-separated batch sizes (1,256)")
    parser.add_argument(
        "--before",
        type=Path,
        help="another checkout's tekscore executable (e.g. /work/main/.venv/bin/tekscore): its "
        "records endpoint is measured too, as 'records before', for a before/after in one run",
    )
    parser.add_argument("--chart", type=Path, help="write a PNG bar chart of rows/s there")
    args = parser.parse_args()
    conns = [int(c) for c in args.connections.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    args.connections = max(conns)  # the generator ceiling's

    exe = ensure_mlserver()
    ensure_venv("kserve")
    print(f"start: {load_average()}, {os.cpu_count()} cpus", flush=True)
    results: dict[tuple[str, int, int], list[Result]] = {}
    loads: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tekscore-bench-") as tmp:
        folder = Path(tmp)
        model = train_model(folder / "model")
        procs = []
        try:
            ours, ours_url = start_ours(folder, model)
            procs.append(ours)
            mls, mls_url = start_mlserver(folder, model, exe)
            procs.append(mls)
            ks, ks_url = start_kserve(folder, model)
            procs.append(ks)
            single, single_url = start_ours(folder, model, ("--no-coalesce",))
            procs.append(single)
            targets = [
                ("mlserver infer", mls_url, "infer", b"outputs"),
                ("kserve infer", ks_url, "infer", b"outputs"),
                ("tekscore records", ours_url, "records", b"prediction"),
                ("tekscore infer", ours_url, "infer", b"outputs"),
                ("records no-coalesce", single_url, "records", b"prediction"),
            ]
            if args.before:
                before, before_url = start_ours(folder, model, exe=args.before)
                procs.append(before)
                targets.append(("records before", before_url, "records", b"prediction"))
            if args.mlserver_batching:
                batching = {"max_batch_size": 8, "max_batch_time": 0.001}
                mlb, mlb_url = start_mlserver(folder, model, exe, batching)
                procs.append(mlb)
                targets.append(("mlserver+batching", mlb_url, "infer", b"outputs"))
            records_256, _, _ = bodies(256)
            answer = httpx.post(
                ours_url + "/v2/models/iris/records",
                content=records_256,
                headers={"content-type": "application/json"},
            ).content
            ceiling = generator_ceiling(folder, records_256, answer, args)
            print(
                f"load generator ceiling ({args.connections} connections, canned "
                f"{len(answer)} B answer, no work): {ceiling.rps:.0f} req/s, "
                f"p50 {ceiling.pct(0.5):.2f} ms",
                flush=True,
            )
            for round_no in range(1, args.rounds + 1):
                for batch in batches:
                    count = args.requests_b1 if batch == 1 else args.requests_b256
                    records_body, infer_body, _ = bodies(batch)
                    for conn in conns:
                        # Interleave the servers, slice by slice, so that machine noise hits
                        # them alike.
                        runs = run_interleaved(
                            [
                                (
                                    name,
                                    f"{url}/v2/models/iris/{endpoint}",
                                    records_body if endpoint == "records" else infer_body,
                                    check,
                                )
                                for name, url, endpoint, check in targets
                            ],
                            requests=count,
                            connections=conn,
                            rows=batch,
                            slices=args.slices,
                        )
                        for name, res in runs.items():
                            results.setdefault((name, batch, conn), []).append(res)
                loads.append(load_average())
                print(f"round {round_no} done: {loads[-1]}", flush=True)
        finally:
            for proc in procs:
                stop(proc)
    names = [name for name, *_ in targets]
    report(results, names, conns, batches, args.rounds)
    print("load per round: " + "; ".join(loads))
    if args.chart:
        chart(args.chart, results, names, conns, batches)
        print(f"chart: {args.chart}")


def report(
    results: dict[tuple[str, int, int], list[Result]],
    names: list[str],
    conns: list[int],
    batches: list[int],
    rounds: int,
) -> None:
    """Every run, then per batch and connection count the ratios against the better peer."""
    print(
        f"\nscoring service vs MLServer 1.7.1 and KServe 0.21, iris sklearn, "
        f"{os.cpu_count()} cpus, {rounds} rounds"
    )
    print(
        "ours/records: prediction + proba_<class> x3 per record; mlserver, kserve /infer: "
        "predict only; ours coalesces concurrent requests (records no-coalesce: a second "
        "server with --no-coalesce), MLServer's adaptive batching off (its default)"
    )
    print(
        f"{'server/endpoint':<20} {'batch':>5} {'conns':>5} {'round':>5} {'req/s':>9} "
        f"{'rows/s':>11} {'p50 ms':>8} {'p99 ms':>8}"
    )
    for batch in batches:
        for conn in conns:
            for name in names:
                for round_no, res in enumerate(results[(name, batch, conn)], 1):
                    print(
                        f"{name:<20} {batch:>5} {conn:>5} {round_no:>5} {res.rps:>9.0f} "
                        f"{res.rows_per_s:>11.0f} {res.pct(0.5):>8.2f} {res.pct(0.99):>8.2f}"
                    )
    print("\ntarget: tekscore records >= 2x the better peer's rows/s, p99 no worse than either's")
    for batch in batches:
        for conn in conns:
            peers = [results[(p, batch, conn)] for p in PEERS]
            for name in names:
                if name in PEERS:
                    continue
                mine = results[(name, batch, conn)]
                ratios = [
                    o.rows_per_s / max(p.rows_per_s for p in ps)
                    for o, *ps in zip(mine, *peers, strict=True)
                ]
                p99s = [
                    min(p.pct(0.99) for p in ps) / o.pct(0.99)
                    for o, *ps in zip(mine, *peers, strict=True)
                ]
                print(
                    f"batch {batch:>3}, {conn:>2} conn: {name} / better peer = median "
                    f"{statistics.median(ratios):.2f}x rows/s "
                    f"[{', '.join(f'{r:.2f}' for r in ratios)}], p99: better peer's / ours "
                    f"median {statistics.median(p99s):.2f}x"
                )
    if "records before" in names:
        print("\nbefore/after in the same run (the --before checkout's records endpoint):")
        for batch in batches:
            for conn in conns:
                pairs = zip(
                    results[("tekscore records", batch, conn)],
                    results[("records before", batch, conn)],
                    strict=True,
                )
                ratios = [now.rows_per_s / then.rows_per_s for now, then in pairs]
                print(
                    f"batch {batch:>3}, {conn:>2} conn: records now / before = median "
                    f"{statistics.median(ratios):.2f}x [{', '.join(f'{r:.2f}' for r in ratios)}]"
                )


def chart(
    path: Path,
    results: dict[tuple[str, int, int], list[Result]],
    names: list[str],
    conns: list[int],
    batches: list[int],
) -> None:
    """Median rows/s per server, one group per batch size x connection count (log scale)."""
    groups = [(b, c) for b in batches for c in conns]
    data = {
        "title": "Scoring service, iris: rows/s (median of rounds; 2 shared cores)",
        "groups": [f"batch {b}, {c} conn" for b, c in groups],
        "series": {
            name: [
                round(statistics.median(r.rows_per_s for r in results[(name, b, c)]))
                for b, c in groups
            ]
            for name in names
        },
        "unit": "rows/s (log scale)",
        "log": True,
    }
    sibling("charts").bars(path, data)


if __name__ == "__main__":
    main()
