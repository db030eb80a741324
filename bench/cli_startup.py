"""Benchmark of the `tekscore` command's start-up: `tekscore --help` and `tekscore status ID`
(against a real `tekscore serve` with one job), against baselines measured in the same run.

Baselines: the bare interpreter (`python -c pass`) and the floor of the libraries a client
command cannot do without: a one-command typer app run with three options (typer 0.29 validates
each parameter with a pydantic TypeAdapter, which loads pydantic's schema machinery) that
imports httpx and rich's table (`FLOOR` below). Each command runs `--runs` times one after the
other; printed: the best and median wall time, the best CPU time (user + system, from the
child's rusage: what the command costs, less sensitive to a busy machine than wall time), and
the ratio of the median to the library floor. Then `python -X importtime` of `tekscore status`:
the modules that cost most, and whether FastAPI, uvicorn, scikit-learn or the IR models were
loaded (they must not be). Target: under 0.3 s for both commands.

Run: `.venv/bin/python bench/cli_startup.py [--runs 20] [--before OTHER/tekscore]` (`--before`:
another checkout's command, e.g. main's, measured in the same run). Loopback only; the server is
stopped at the end; about 20 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from siblings import sibling

_b: Any = sibling("scheduler")
AUTH, SMALL_PIPELINE, TEKSCORE, TOKEN = _b.AUTH, _b.SMALL_PIPELINE, _b.TEKSCORE, _b.TOKEN
scheduler, uptime = _b.scheduler, _b.uptime

TARGET_SECONDS = 0.3
FLOOR = """
import httpx, typer
from rich.console import Console
from rich.table import Table

app = typer.Typer()

@app.command()
def status(job: str, server: str = "", token: str = "", output: str = "table") -> None:
    Console().print(Table("job"))

@app.callback()
def root() -> None:
    pass

app(["status", "j-x", "--server", "s", "--token", "t", "--output", "json"])
"""
HEAVY = ("fastapi", "uvicorn", "sklearn", "numpy", "ir", "scoring_service", "scoring_flow")


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `command` (its output discarded)."""
    began = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0,):
        raise RuntimeError(f"{command} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def measure(name: str, command: list[str], env: dict[str, str], runs: int) -> dict[str, float]:
    timed(command, env)  # warm the page cache and the .pyc files
    samples = [timed(command, env) for _ in range(runs)]
    walls = [w for w, _ in samples]
    result = {
        "best": min(walls),
        "median": statistics.median(walls),
        "cpu": min(c for _, c in samples),
    }
    print(
        f"  {name:<34} best {result['best'] * 1000:6.0f} ms   median "
        f"{result['median'] * 1000:6.0f} ms   cpu {result['cpu'] * 1000:6.0f} ms"
    )
    return result


def import_profile(command: list[str], env: dict[str, str]) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of every module `command` imports."""
    found = subprocess.run(
        [sys.executable, "-X", "importtime", *command],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    out = []
    for line in found.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, module = line.split("|")
            if cumulative.strip().isdigit():
                out.append((int(cumulative), module.strip()))
    return out


def wait_ended(url: str, job_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = httpx.get(f"{url}/api/v1/jobs/{job_id}", headers=AUTH, timeout=10)
        if answer.json()["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"job {job_id} did not end in 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description="tekscore start-up benchmark")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--before",
        help="another checkout's tekscore (e.g. /work/main/.venv/bin/tekscore), measured in the "
        "same run for a before/after",
    )
    args = parser.parse_args()
    print(uptime())
    if os.getloadavg()[0] > 1.0:
        print("(the machine is busy: wall times will be noisy; the CPU column less so)")
    with (
        tempfile.TemporaryDirectory(prefix="tekscore-bench-") as name,
        # no warm spares: their start (two processes importing scikit-learn) would compete
        # with the command measured for the machine's two cores
        scheduler(Path(name) / "home", {"TEKSCORE_WARM_RUNTIMES": "0"}) as server,
    ):
        started = httpx.post(
            server.url + "/api/v1/jobs",
            json={"pipeline": {"files": {"small.yaml": SMALL_PIPELINE}}},
            headers=AUTH,
            timeout=30,
        )
        started.raise_for_status()
        job_id = started.json()["id"]
        wait_ended(server.url, job_id)  # its processes gone before anything is timed
        # bytecode written as on a user's machine (an environment with PYTHONDONTWRITEBYTECODE,
        # like this one's, would compile every module of an editable install on every run)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env |= {"TEKSCORE_SERVER": server.url, "TEKSCORE_TOKEN": TOKEN}
        python = sys.executable
        print(f"{args.runs} runs each:")
        bare = measure("python -c pass", [python, "-c", "pass"], env, args.runs)
        floor = measure("floor: typer app + httpx + rich", [python, "-c", FLOOR], env, args.runs)
        help_ = measure("tekscore --help", [TEKSCORE, "--help"], env, args.runs)
        status = measure(f"tekscore status {job_id}", [TEKSCORE, "status", job_id], env, args.runs)
        before = {}
        if args.before:
            before["--help"] = measure(
                "before: tekscore --help", [args.before, "--help"], env, args.runs
            )
            before["status"] = measure(
                "before: tekscore status", [args.before, "status", job_id], env, args.runs
            )
        profile = import_profile([TEKSCORE, "status", job_id], env)
    loaded = {module for _, module in profile}
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    print("\n`tekscore status` imports, most expensive (cumulative, this run):")
    top = sorted((p for p in profile if "." not in p[1]), reverse=True)[:8]
    for micros, module in top:
        print(f"  {micros / 1000:7.1f} ms  {module}")
    print(f"  heavy modules loaded: {', '.join(heavy) or 'none'}")
    print()
    for name, result in (("--help", help_), ("status", status)):
        verdict = "met" if result["median"] < TARGET_SECONDS else "NOT met"
        print(
            f"tekscore {name}: median {result['median'] * 1000:.0f} ms "
            f"(target < {TARGET_SECONDS * 1000:.0f} ms: {verdict}); "
            f"{result['median'] / floor['median']:.2f}x the library floor "
            f"(CPU {result['cpu'] / floor['cpu']:.2f}x), "
            f"{result['median'] / bare['median']:.1f}x the bare interpreter "
            f"(CPU {result['cpu'] / bare['cpu']:.1f}x)"
        )
        if name in before:
            then = before[name]
            print(
                f"  before: median {then['median'] * 1000:.0f} ms, CPU {then['cpu'] * 1000:.0f} ms;"
                f" now / before: wall {result['median'] / then['median']:.2f}x, "
                f"CPU {result['cpu'] / then['cpu']:.2f}x"
            )
    print(uptime())


if __name__ == "__main__":
    main()
