"""Benchmark: tekscore's scoring service against MLServer 1.7.1 (mlserver-sklearn) on the
iris example model, with the same records, at batch 1 and batch 256.

What is compared (printed with the results):
- ours on the records endpoint (`POST /v2/models/iris/records`): every record gets
  `prediction` and `proba_<class>` x3 (4 fields; the response is ~10x MLServer's), and, for
  information, on OIP `infer` (4 output tensors);
- MLServer on OIP `infer`, its default `predict` output only.
Both run with their default settings, one server process each, on loopback, free ports. Ours
scores concurrent requests that are ready together with one model call (its default for
row-wise scikit-learn models); a second server of ours with `--no-coalesce` shows the records
endpoint without it. MLServer's adaptive batching is off by default (`max_batch_size` 0);
`--mlserver-batching` adds a run of MLServer with it on, for information.

MLServer lives in its own venv `bench/.venv-mlserver` (its pins clash with ours), created here
when missing (pip install from the package index), and runs offline from a `settings.json`
(host 127.0.0.1, gRPC/metrics on free ports, parallel_workers 0 = inference in the server
process, its fastest setting for a small model, debug off).

The load generator is a minimal keep-alive HTTP/1.1 client on asyncio streams with
`--connections` concurrent connections, the same for both servers; every loop is bounded by a
request count. Its own ceiling is measured first against a canned-answer server (a raw asyncio
protocol answering our batch-256 response bytes without any work) and printed. The machine's
load average is printed with each round: on a shared machine, run it when the load is low.
`--rounds` repeats the whole interleaved set; each ratio is reported per round and as the median.

Run: `.venv/bin/python bench/scoring_service.py [--rounds 3] [--requests-b1 4000]
[--requests-b256 1500] [--connections 4] [--mlserver-batching]`.
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

from common.ports import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MLSERVER_VENV = HERE / ".venv-mlserver"
MLSERVER_PINS = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1"]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def ensure_mlserver() -> Path:
    """The mlserver executable, installing its venv first when missing."""
    exe = MLSERVER_VENV / "bin" / "mlserver"
    if exe.exists():
        return exe
    print(f"creating {MLSERVER_VENV} (MLServer 1.7.1 + mlserver-sklearn) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
    import sklearn

    pins = [*MLSERVER_PINS, f"scikit-learn=={sklearn.__version__}"]
    subprocess.run([str(MLSERVER_VENV / "bin" / "pip"), "install", "-q", *pins], check=True)
    return exe


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
    folder: Path, model: Path, extra: tuple[str, ...] = ()
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
    exe = Path(sys.executable).parent / "tekscore"
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
        stderr=(folder / f"ours{''.join(extra)}.log").open("wb"),
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


def run_load(
    url: str, path: str, body: bytes, *, requests: int, connections: int, rows: int, check: bytes
) -> Result:
    host, port = url.removeprefix("http://").split(":")
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []

    async def main(n: int) -> None:
        per = max(1, n // connections)
        await asyncio.gather(
            *(
                _connection(host, int(port), request, per, latencies, check)
                for _ in range(connections)
            )
        )

    asyncio.run(main(max(connections, requests // 10)))  # warm-up
    latencies.clear()
    started = time.perf_counter()
    asyncio.run(main(requests))
    seconds = time.perf_counter() - started
    return Result(len(latencies), len(latencies) * rows, seconds, latencies)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests-b1", type=int, default=4000)
    parser.add_argument("--requests-b256", type=int, default=1500)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--mlserver-batching",
        action="store_true",
        help="also run MLServer with adaptive batching (max_batch_size 8, max_batch_time 1 ms)",
    )
    args = parser.parse_args()

    exe = ensure_mlserver()
    print(f"start: {load_average()}, {os.cpu_count()} cpus", flush=True)
    results: dict[tuple[str, int], list[Result]] = {}
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
            single, single_url = start_ours(folder, model, ("--no-coalesce",))
            procs.append(single)
            targets = [
                ("mlserver infer", mls_url, "infer", b"outputs"),
                ("tekscore records", ours_url, "records", b"prediction"),
                ("tekscore infer", ours_url, "infer", b"outputs"),
                ("records no-coalesce", single_url, "records", b"prediction"),
            ]
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
                f"load generator ceiling (canned {len(answer)} B answer, no work): "
                f"{ceiling.rps:.0f} req/s, p50 {ceiling.pct(0.5):.2f} ms",
                flush=True,
            )
            for round_no in range(1, args.rounds + 1):
                for batch, count in ((1, args.requests_b1), (256, args.requests_b256)):
                    records_body, infer_body, _ = bodies(batch)
                    # Interleave the servers so that machine noise hits them alike.
                    for name, url, endpoint, check in targets:
                        body = records_body if endpoint == "records" else infer_body
                        res = run_load(
                            url,
                            f"/v2/models/iris/{endpoint}",
                            body,
                            requests=count,
                            connections=args.connections,
                            rows=batch,
                            check=check,
                        )
                        results.setdefault((name, batch), []).append(res)
                loads.append(load_average())
                print(f"round {round_no} done: {loads[-1]}", flush=True)
        finally:
            for proc in procs:
                stop(proc)

    names = [name for name, *_ in targets]
    print(
        f"\nscoring service vs MLServer 1.7.1, iris sklearn, {args.connections} connections, "
        f"{os.cpu_count()} cpus, {args.rounds} rounds"
    )
    print(
        "ours/records: prediction + proba_<class> x3 per record; mlserver/infer: predict only; "
        "ours coalesces concurrent requests (records no-coalesce: a second server with "
        "--no-coalesce), MLServer's adaptive batching off (its default)"
    )
    print(
        f"{'server/endpoint':<20} {'batch':>5} {'round':>5} {'req/s':>9} {'rows/s':>11} "
        f"{'p50 ms':>8} {'p99 ms':>8}"
    )
    for batch in (1, 256):
        for name in names:
            for round_no, res in enumerate(results[(name, batch)], 1):
                print(
                    f"{name:<20} {batch:>5} {round_no:>5} {res.rps:>9.0f} {res.rows_per_s:>11.0f} "
                    f"{res.pct(0.5):>8.2f} {res.pct(0.99):>8.2f}"
                )
    print()
    targets_x = {1: 1.0, 256: 1.5}
    for batch in (1, 256):
        base = results[("mlserver infer", batch)]
        for name in names[1:]:
            ratios = [
                o.rows_per_s / b.rows_per_s
                for o, b in zip(results[(name, batch)], base, strict=True)
            ]
            p50s = [
                b.pct(0.5) / o.pct(0.5) for o, b in zip(results[(name, batch)], base, strict=True)
            ]
            target = f" (target >= {targets_x[batch]}x)" if name == "tekscore records" else ""
            print(
                f"batch {batch:>3}: {name} / mlserver infer = median "
                f"{statistics.median(ratios):.2f}x rows/s "
                f"[{', '.join(f'{r:.2f}' for r in ratios)}], "
                f"median {statistics.median(p50s):.2f}x p50 latency{target}"
            )
    print("load per round: " + "; ".join(loads))


if __name__ == "__main__":
    main()
