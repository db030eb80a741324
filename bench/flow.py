"""Benchmark: a batch scoring flow file -> score -> file against the real scoring service,
versus the limit: one process that reads the same file, decodes, calls the model on chunks of the
same size, and writes the results (no network, no framework).

Run: `python bench/flow.py [--records 1000000] [--sweep-records 200000] [--no-sweep]
[--before /path/to/main/.venv/bin/tekscore]`.

Prints records/s of both and the ratio (target, issue 16: the flow with default settings at
>= 1.0x the limit), the load average at each run, a sweep of batchSize x concurrency with the
best setting, and the flow process's peak RSS (sampled from /proc every 50 ms) for a small and
the large input, to show memory does not grow with the size of the source. `--before` also runs
another checkout's flow (main's, for a before/after of a change) against the same service,
interleaved with the limit and this checkout's flow, so all three see the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "iris"))
from train import FEATURES, train  # noqa: E402

from common.ports import free_port  # noqa: E402
from ir.values import FlowValues  # noqa: E402
from scoring_flow.allocator import keep_freed_memory  # noqa: E402
from scoring_flow.runner import TRIM_THRESHOLD  # noqa: E402

# `BENCH_TEKSCORE=/path/to/other/.venv/bin/tekscore` runs the flow and the service of another
# checkout (main's, for a before/after comparison) while the limit stays the same
TEKSCORE = Path(os.environ.get("BENCH_TEKSCORE") or Path(sys.executable).parent / "tekscore")
# the flow defaults of the IR (what a flow gets when its IR says nothing)
DEFAULT_BATCH = int(FlowValues.model_fields["batch_size"].default)
DEFAULT_CONCURRENCY = int(FlowValues.model_fields["concurrency"].default)


def write_records(path: Path, count: int, seed: int = 7) -> None:
    """`count` iris-like records (id + 4 features), written as JSON lines."""
    from sklearn.datasets import load_iris

    base = load_iris().data
    rng = np.random.default_rng(seed)
    with path.open("wb") as f:
        for start in range(0, count, 100_000):
            n = min(100_000, count - start)
            rows = base[np.arange(start, start + n) % len(base)] + rng.normal(0, 0.1, (n, 4))
            rows = np.round(rows, 2)
            f.write(
                b"".join(
                    orjson.dumps(
                        {"id": start + i, **dict(zip(FEATURES, map(float, r), strict=True))}
                    )
                    + b"\n"
                    for i, r in enumerate(rows)
                )
            )


def limit(model_path: Path, src: Path, out: Path, chunk: int) -> float:
    """The no-framework baseline: records/s of decode -> predict + predict_proba -> encode."""
    return limit_cpu(model_path, src, out, chunk)[0]


def limit_cpu(model_path: Path, src: Path, out: Path, chunk: int) -> tuple[float, float]:
    """The baseline's records/s and its CPU seconds per record."""
    import joblib

    model = joblib.load(model_path)
    classes = [str(c) for c in model.classes_]
    started = time.perf_counter()
    cpu0 = time.process_time()
    n = 0
    with src.open("rb") as fin, out.open("wb") as fout:
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            x = np.array([[r[f] for f in FEATURES] for r in batch], dtype=float)
            labels = model.predict(x)
            proba = model.predict_proba(x)
            lines = []
            for r, label, p in zip(batch, labels, proba, strict=True):
                r["prediction"] = str(label)
                for c, v in zip(classes, p, strict=True):
                    r[f"proba_{c}"] = float(v)
                lines.append(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE))
            fout.write(b"".join(lines))

        for line in fin:
            batch.append(orjson.loads(line))
            if len(batch) == chunk:
                flush()
                n += len(batch)
                batch = []
        if batch:
            flush()
            n += len(batch)
    return n / (time.perf_counter() - started), (time.process_time() - cpu0) / n


class Service:
    def __init__(self, model: Path, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = folder / "service.yaml"
        config.write_text(
            yaml.safe_dump(
                {
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
            )
        )
        self.log = (folder / "service.log").open("wb")
        self.proc = subprocess.Popen(
            [str(TEKSCORE), "serve-model", "--config", str(config), "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TEKSCORE_LOG_LEVEL": "warning"},
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/v2/health/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SystemExit("serve-model did not become ready")

    def cpu(self) -> float:
        """CPU seconds the service process used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_flow(
    *, folder: Path, src: Path, url: str, batch: int | None, concurrency: int | None
) -> tuple[float, int, int]:
    """Records/s (from `flow activated` to `flow completed`), records out, peak RSS in KiB."""
    rate, n, peak, _ = run_flow_cpu(
        folder=folder, src=src, url=url, batch=batch, concurrency=concurrency
    )
    return rate, n, peak


def run_flow_cpu(
    *,
    folder: Path,
    src: Path,
    url: str,
    batch: int | None,
    concurrency: int | None,
    keep: bool = False,
    tekscore: Path | None = None,
) -> tuple[float, int, int, float]:
    """`run_flow` plus the flow process's CPU seconds (start-up included); the output
    (`folder/flow-out.jsonl`) is removed unless `keep`. `tekscore`: another checkout's."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = folder / "flow-out.jsonl"
    config: dict[str, Any] = {
        "name": "bench",
        "mode": "batch",
        "source": {"type": "file", "direction": "source", "config": {"path": str(src)}},
        "sink": {"type": "file", "direction": "sink", "config": {"path": str(out)}},
        "steps": [{"type": "score", "model": "iris", "service": "iris"}],
        "services": {"iris": {"url": url, "protocol": "records", "models": ["iris"]}},
    }
    if batch is not None:
        config["batchSize"] = batch
    if concurrency is not None:
        config["concurrency"] = concurrency
    path = folder / "flow.json"
    path.write_text(json.dumps(config))
    log_path = folder / "flow.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(tekscore or TEKSCORE), "flow", "run", str(path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TEKSCORE_LOG_FORMAT": "json", "TEKSCORE_PROGRESS_INTERVAL": "30"},
        )
        peak = 0
        while proc.poll() is None:
            peak = max(peak, rss_kib(proc.pid))
            time.sleep(0.05)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"flow failed:\n{log_path.read_text()[-2000:]}")
    events = {}
    for line in log_path.read_text().splitlines():
        if line.startswith("{"):
            e = json.loads(line)
            events[e["event"]] = e
    t0 = datetime.fromisoformat(events["flow activated"]["timestamp"])
    t1 = datetime.fromisoformat(events["flow completed"]["timestamp"])
    n = int(events["flow completed"]["records_out"])
    if not keep:
        out.unlink()
    return n / (t1 - t0).total_seconds(), n, peak, cpu


def run_against(
    service: Service,
    folder: Path,
    src: Path,
    *,
    batch: int | None = None,
    concurrency: int | None = None,
    tekscore: Path | None = None,
) -> tuple[float, int, int, float, float]:
    """`run_flow_cpu` against `service`, plus the service's CPU seconds per record of the run."""
    s0 = service.cpu()
    rate, n, peak, cpu = run_flow_cpu(
        folder=folder,
        src=src,
        url=service.url,
        batch=batch,
        concurrency=concurrency,
        tekscore=tekscore,
    )
    return rate, n, peak, cpu, (service.cpu() - s0) / n


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


@dataclass
class Contender:
    """One checkout's flow in the main comparison: its best rate and peak RSS, its lowest CPU
    per record (the flow process's net of start-up, measured on the small input; the
    service's), over the repeats."""

    tekscore: Path | None
    small_peak: int = 0
    small_cpu: float = 0.0
    rate: float = 0.0
    peak: int = 0
    cpu: float = float("inf")
    cpu_service: float = float("inf")

    def add(
        self, rate: float, peak: int, cpu: float, service: float, *, small: int, n: int
    ) -> None:
        """One run over `n` records (the small run over `small` paid the same start-up)."""
        self.rate, self.peak = max(self.rate, rate), max(self.peak, peak)
        self.cpu = min(self.cpu, (cpu - self.small_cpu) / (n - small))
        self.cpu_service = min(self.cpu_service, service)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--sweep-records", type=int, default=200_000)
    parser.add_argument("--small-records", type=int, default=50_000)
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--repeat", type=int, default=2, help="best of N for the main pair")
    parser.add_argument(
        "--before", type=Path, help="another checkout's tekscore (main's), run as a before-version"
    )
    args = parser.parse_args()
    # the limit runs in this process with the allocator tuned as in the flow process, so both
    # sides keep freed memory for their next chunk (without it glibc's thresholds would depend
    # on what this process allocated before: write_records raises them as a side effect)
    keep_freed_memory(TRIM_THRESHOLD)
    with tempfile.TemporaryDirectory(prefix="bench-flow-") as tmp:
        folder = Path(tmp)
        model = train(folder)
        src = folder / "input.jsonl"
        write_records(src, args.records)
        size_mib = src.stat().st_size / 2**20
        print(f"input: {args.records:,} records, {size_mib:.0f} MiB; cpus: {os.cpu_count()}")

        service = Service(model, folder)
        try:
            # limit and flow(s) alternate `repeat` times and the best of each is kept: this
            # machine may be shared, and noise only ever slows a run down
            small = folder / "small.jsonl"
            write_records(small, args.small_records)
            flows = {"flow": Contender(None)}
            if args.before is not None:
                flows["before"] = Contender(args.before)
            for contender in flows.values():
                _, _, contender.small_peak, contender.small_cpu, _ = run_against(
                    service, folder, small, tekscore=contender.tekscore
                )
            base, cpu_limit = 0.0, float("inf")
            for i in range(args.repeat):
                b, c = limit_cpu(model, src, folder / "limit-out.jsonl", DEFAULT_BATCH)
                base, cpu_limit = max(base, b), min(cpu_limit, c)
                print(f"  run {i + 1}: limit {b:,.0f} records/s; {load_average()}", flush=True)
                for name, contender in flows.items():
                    r, n, p, c, sc = run_against(service, folder, src, tekscore=contender.tekscore)
                    assert n == args.records, n
                    contender.add(r, p, c, sc, small=args.small_records, n=n)
                    print(
                        f"  run {i + 1}: {name} {r:,.0f} records/s ({r / b:.2f}x); {load_average()}"
                    )
            print(
                f"limit (1 process, decode -> predict+proba -> encode, chunks of {DEFAULT_BATCH}): "
                f"{base:,.0f} records/s (best of {args.repeat})"
            )
            for name, f in flows.items():
                print(
                    f"{name} (defaults batchSize={DEFAULT_BATCH} concurrency={DEFAULT_CONCURRENCY}"
                    f"{', ' + str(f.tekscore) if f.tekscore else ''}): {f.rate:,.0f} records/s  "
                    f"ratio {f.rate / base:.2f}x  peak RSS {f.peak / 1024:.0f} MiB"
                )
                print(
                    f"  CPU per record (less load-dependent): limit {cpu_limit * 1e6:.1f} us; flow "
                    f"process {f.cpu * 1e6:.1f} us + scoring service {f.cpu_service * 1e6:.1f} us "
                    f"(with two idle cores the flow is bounded by "
                    f"{1 / max(f.cpu, f.cpu_service):,.0f} records/s = "
                    f"{cpu_limit / max(f.cpu, f.cpu_service):.0%} of the limit)"
                )
            flow = flows["flow"]
            print(
                f"memory: peak RSS {flow.small_peak / 1024:.0f} MiB for {args.small_records:,} "
                f"records vs {flow.peak / 1024:.0f} MiB for {args.records:,} ({size_mib:.0f} MiB "
                "input): bounded by batchSize x concurrency, not by the source"
            )
            cpu_flow, small_cpu = flow.cpu, flow.small_cpu

            if not args.no_sweep:
                sweep_src = folder / "sweep.jsonl"
                write_records(sweep_src, args.sweep_records)
                startup = small_cpu - args.small_records * cpu_flow
                results = []
                print(
                    f"sweep over {args.sweep_records:,} records (each ratio against a limit run "
                    "measured just before it, with chunks of the same size; CPU us per record of "
                    "the flow process net of start-up, and of the service):"
                )
                for batch in (256, 1024, 2048, 4096):
                    for conc in (1, 2, 4):
                        lim = limit(model, sweep_src, folder / "limit-out.jsonl", batch)
                        r, n, _, c, sc = run_against(
                            service, folder, sweep_src, batch=batch, concurrency=conc
                        )
                        flow_us = (c - startup) / n * 1e6
                        service_us = sc * 1e6
                        bound = cpu_limit * 1e6 / max(flow_us, service_us)
                        results.append((bound, r / lim, r, batch, conc))
                        print(
                            f"  batchSize={batch:5d} concurrency={conc}: {r:8,.0f} records/s"
                            f"  limit {lim:8,.0f}  ratio {r / lim:4.0%}  |  CPU flow "
                            f"{flow_us:4.1f} us  service {service_us:4.1f} us  "
                            f"two-idle-core bound {bound:4.0%}"
                        )
                by_wall = max(results, key=lambda x: x[1])
                by_cpu = max(results)
                print(
                    f"best by wall ratio (noisy on a shared machine): batchSize={by_wall[3]} "
                    f"concurrency={by_wall[4]}: ratio {by_wall[1]:.0%}"
                )
                print(
                    f"best by CPU bound: batchSize={by_cpu[3]} concurrency={by_cpu[4]}: "
                    f"{by_cpu[0]:.0%} of the limit"
                )
        finally:
            service.stop()


if __name__ == "__main__":
    main()
