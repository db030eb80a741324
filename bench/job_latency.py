"""Job latency on the local backend, cold start against warm spares, in the same run.

The iris job with `--records` records (`examples/iris/train.py`'s model and records, with
`model.yaml` + `batch.yaml`) from `POST /api/v1/jobs` to SUCCEEDED, through two real
`tekscore serve` at once: one with `TEKSCORE_WARM_RUNTIMES=0` (every process started cold: a
new Python that imports its runtime) and one with warm spares (the default). Jobs alternate
between them, `--repeat` each; before each warm job the bench waits until the server's log says
a new set of spares is ready (`warm spares ready`), so each warm job finds one, as a job does on
a server that is not starting jobs back to back. Phases come from `bench/scheduler.py`'s
`one_job` (the job's events, the scheduler's, service's and flow's logs, the flow's
`/metrics`). The sandbox is the server's default (`auto`: bubblewrap when it works here).

Run: `.venv/bin/python bench/job_latency.py [--records 10000] [--repeat 3]`. Loopback only;
both servers, every job process and the temporary folder are removed at the end; about a
minute on an idle machine. Prints the load average before and after: the machine has 2 cores
shared with other test runs, so read the ratio (measured in alternation), not the seconds.
Target: warm start -> SUCCEEDED under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

_SPEC = importlib.util.spec_from_file_location(
    "bench_scheduler", Path(__file__).resolve().parent / "scheduler.py"
)
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)  # bench/scheduler.py: its server and job phases
_SPEC.loader.exec_module(bench)

TARGET = 1.0
HEADLINE = ("RUNNING", "first record scored (flow /metrics)", "SUCCEEDED")


@contextmanager
def server(home: Path, warm: int) -> Iterator[bench.Server]:
    """`bench.scheduler`'s real server, with `TEKSCORE_WARM_RUNTIMES=warm`."""
    original = bench.scheduler_env

    def env(home: Path) -> dict[str, str]:
        return {**original(home), "TEKSCORE_WARM_RUNTIMES": str(warm)}

    with mock.patch.object(bench, "scheduler_env", env), bench.scheduler(home) as running:
        yield running


def ready_sets(home: Path) -> int:
    """How many times the server said a set of warm spares is ready."""
    return sum(
        1 for e in bench.log_events(home / "scheduler.log") if e.get("event") == "warm spares ready"
    )


def wait_ready_sets(home: Path, count: int, timeout: float = 120) -> float:
    """Wait until the server has said `count` sets were ready; seconds waited."""
    began = time.monotonic()
    while ready_sets(home) < count:
        if time.monotonic() - began > timeout:
            raise RuntimeError(
                f"no warm spares ready within {timeout:g} s (see {home}/scheduler.log)"
            )
        time.sleep(0.05)
    return time.monotonic() - began


def warm_processes(home: Path) -> int:
    """How many job processes were handed to warm spares (the scheduler's log)."""
    return sum(
        1
        for e in bench.log_events(home / "scheduler.log")
        if e.get("event") == "process started" and e.get("warm")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="job latency: cold start vs warm spares")
    parser.add_argument("--records", type=int, default=10_000, help="iris records to score")
    parser.add_argument("--repeat", type=int, default=3, help="jobs of each kind")
    args = parser.parse_args()
    bench.args_records = args.records
    print(bench.uptime())
    print(f"{os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    runs: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    with tempfile.TemporaryDirectory(prefix="tekscore-joblat-") as name:
        tmp = Path(name)
        iris = bench.iris_folder(tmp / "iris", args.records)
        cold_home, warm_home = tmp / "cold-home", tmp / "warm-home"
        with server(cold_home, 0) as cold, server(warm_home, 2) as warm:
            for i in range(args.repeat):
                runs["cold"].append(asyncio.run(bench.one_job(cold, cold_home, iris)))
                waited = wait_ready_sets(warm_home, i + 1)
                runs["warm"].append(asyncio.run(bench.one_job(warm, warm_home, iris)))
                print(f"  round {i + 1}: waited {waited:.2f} s for the spares; {bench.uptime()}")
            handed = warm_processes(warm_home)
            assert warm_processes(cold_home) == 0
    print(
        f"\nIris batch job, {args.records:,} records, {args.repeat} jobs each (seconds since the "
        f"start request; medians); {handed} processes handed to warm spares"
    )
    print(f"  {'phase':<40} {'cold':>8} {'warm':>8} {'warm/cold':>10}")
    for key in runs["cold"][0]:
        c = statistics.median(r[key] for r in runs["cold"])
        w = statistics.median(r[key] for r in runs["warm"])
        star = "*" if key in HEADLINE else " "
        ratio = f"{w / c:>10.2f}" if c > 0 else f"{'':>10}"
        print(f" {star}{key:<40} {c:>8.3f} {w:>8.3f} {ratio}")
    totals = {k: [r["SUCCEEDED"] for r in v] for k, v in runs.items()}
    print(
        "  SUCCEEDED per job: "
        + "; ".join(f"{k} " + " ".join(f"{t:.2f}" for t in v) for k, v in totals.items())
    )
    cold_m, warm_m = statistics.median(totals["cold"]), statistics.median(totals["warm"])
    verdict = "ok" if warm_m < TARGET else "MISSED"
    print(
        f"\niris job start -> SUCCEEDED, median: cold {cold_m:.2f} s, warm {warm_m:.2f} s "
        f"({cold_m / warm_m:.1f}x faster; target warm < {TARGET:g} s: {verdict})"
    )
    print(bench.uptime())


if __name__ == "__main__":
    main()
