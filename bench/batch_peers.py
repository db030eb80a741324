"""Benchmark: batch scoring of one file, end to end, against what a user would pick instead.

The same iris records (JSON lines, `bench/flow.py`'s generator), the same model file and machine
for every contender; each one reads the file, scores every record with `predict` and
`predict_proba`, and writes one output record per input record:

- **limit**: one process, no framework (decode -> predict + proba -> encode in chunks of the
  flow's default batch size; `bench/flow.py`'s `limit_cpu`), run in this process;
- **tekscore flow**: `tekscore flow run` (file -> score -> file, default settings) against a
  pre-started `tekscore serve-model`: the whole process (start-up included) and its run alone
  (from `flow activated` to `flow completed`);
- **pandas**: the naive script a data scientist writes (`pd.read_json(lines=True)` ->
  `model.predict` / `predict_proba` -> `to_json(orient="records", lines=True)`), in its own
  venv `bench/.venv-pandas`;
- **Ray Data**: `ray.data.read_json(...).map_batches(<callable class holding the model>,
  batch_size=..., concurrency=...).write_json(...)`, local Ray (no cluster), in its own venv
  `bench/.venv-ray`, with Ray's advice for CPU batch inference: a callable class so the model
  loads once per actor, large numpy batches, one actor per spare core (`--ray-concurrency`, 1 by
  default: on 2 cores the driver and the read/write tasks need the other one);
- **mlserver infer**: MLServer 1.7.1 (mlserver-sklearn, pre-started, `bench/.venv-mlserver`) and
  its own batch client `mlserver infer` (`-w 4 -s 256`) on the same records written as V2 infer
  requests (the conversion is not timed); `--no-mlserver` leaves it out.

Every contender's output is checked (one output per input, same predicted labels as the limit
on every record) before its time counts. Printed: records/s of the whole process (start-up
included: what the user waits for) and, where the contender can say, of its run alone; peak RSS
(the whole process tree, sampled from /proc every 50 ms); the load average; the ratios against
the limit and of the flow against each peer. Venvs are created on first use (`bench/venvs.py`).
`--chart PATH` writes a bar chart (matplotlib, in `bench/.venv-plot`).

Run: `.venv/bin/python bench/batch_peers.py [--records 50000] [--records 1000000 ...]`
(several sizes in one run; the default 50,000 takes a few minutes on a busy 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from siblings import sibling
from venvs import ensure_venv

_flow: Any = sibling("flow")
_svc: Any = sibling("scoring_service")
FEATURES: list[str] = _flow.FEATURES
load_average = _flow.load_average

PANDAS_SCRIPT = """
import sys, time, joblib, pandas as pd
model_path, src, out = sys.argv[1:4]
began = time.perf_counter()
model = joblib.load(model_path)
df = pd.read_json(src, lines=True)
x = df[["sepal_length", "sepal_width", "petal_length", "petal_width"]].to_numpy()
df["prediction"] = model.predict(x).astype(str)
proba = model.predict_proba(x)
for i, c in enumerate(model.classes_):
    df[f"proba_{c}"] = proba[:, i]
df.to_json(out, orient="records", lines=True)
print(time.perf_counter() - began)
"""

RAY_SCRIPT = """
import os, sys, time
import joblib, numpy as np, ray
model_path, src, out, batch, concurrency = sys.argv[1:6]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

class Scorer:
    def __init__(self):
        self.model = joblib.load(model_path)
        self.classes = [str(c) for c in self.model.classes_]

    def __call__(self, batch):
        x = np.column_stack([batch[f] for f in FEATURES])
        batch["prediction"] = self.model.predict(x).astype(str)
        proba = self.model.predict_proba(x)
        for i, c in enumerate(self.classes):
            batch[f"proba_{c}"] = proba[:, i]
        return batch

began = time.perf_counter()
for attempt in range(1, 4):  # on a busy machine the raylet can miss Ray's fixed 30 s start-up
    try:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        break
    except Exception as exc:
        if "timed out during startup" not in str(exc) or attempt == 3:
            raise
        ray.shutdown()
        print(f"ray.init attempt {attempt} timed out", file=sys.stderr)
ready = time.perf_counter()
ray.data.DataContext.get_current().enable_progress_bars = False
ds = ray.data.read_json(src, lines=True)
ds = ds.map_batches(Scorer, batch_size=int(batch), concurrency=int(concurrency),
                    batch_format="numpy")
ds.write_json(out)
ended = time.perf_counter()
print(attempt, ended - ready)
ray.shutdown()
"""


@dataclass
class Outcome:
    """One contender's run over one input."""

    name: str
    whole: float  # records/s of the whole process (start-up included)
    run: float | None  # records/s of its run alone, where it can say
    peak_kib: int


def tree_rss_kib(root: int) -> int:
    """RSS of a process and all its descendants (Ray starts several processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += _flow.rss_kib(pid)
        stack.extend(children.get(pid, []))
    return total


def timed_process(
    command: list[str], *, env: dict[str, str] | None = None
) -> tuple[float, int, str]:
    """Wall seconds, peak RSS of the process tree in KiB, and stdout of `command`."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        peak = 0
        ticks = 0
        while proc.poll() is None:
            # the whole tree is costly to walk: every 4th sample, the process alone in between
            pid = proc.pid
            peak = max(peak, tree_rss_kib(pid) if ticks % 4 == 0 else _flow.rss_kib(pid))
            ticks += 1
            time.sleep(0.05)
        seconds = time.perf_counter() - began
        out.seek(0)
        err.seek(0)
        text, stderr = out.read().decode(), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return seconds, peak, text


def labels_of(path: Path) -> list[str]:
    """The `prediction` of every output record of a JSON-lines file or folder, in input order
    (by `id`)."""
    files = sorted(path.glob("*.json*")) if path.is_dir() else [path]
    pairs: list[tuple[int, str]] = []
    for file in files:
        with file.open("rb") as f:
            pairs.extend((int(r["id"]), str(r["prediction"])) for r in map(orjson.loads, f))
    pairs.sort()
    return [label for _, label in pairs]


def check(name: str, path: Path, expected: list[str]) -> None:
    got = labels_of(path)
    if got != expected:
        wrong = sum(a != b for a, b in zip(got, expected, strict=False))
        raise SystemExit(
            f"{name}: {len(got)} outputs for {len(expected)} inputs, {wrong} labels differ"
        )


def peer_env() -> dict[str, str]:
    """The environment of a peer's own venv: ours left out, one thread per BLAS call (as in
    our processes), Ray's usage report off (offline)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    # Ray: no usage report (offline); its agents may take more than the 30 s it waits for them
    # by default on a busy machine (the raylet then aborts)
    ray = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_agent_register_timeout_ms": "180000"}
    return {**env, **ray, "OMP_NUM_THREADS": "1"}


def run_pandas(model: Path, src: Path, out: Path, n: int) -> Outcome:
    python = ensure_venv("pandas") / "python"
    seconds, peak, text = timed_process(
        [str(python), "-c", PANDAS_SCRIPT, str(model), str(src), str(out)], env=peer_env()
    )
    return Outcome("pandas script", n / seconds, n / float(text.split()[-1]), peak)


def run_ray(model: Path, src: Path, out: Path, n: int, *, batch: int, concurrency: int) -> Outcome:
    python = ensure_venv("ray") / "python"
    seconds, peak, text = timed_process(
        [
            str(python),
            "-c",
            RAY_SCRIPT,
            str(model),
            str(src),
            str(out),
            str(batch),
            str(concurrency),
        ],
        env=peer_env(),
    )
    attempts, run_seconds = text.split()[-2:]
    retried = f", {attempts} ray.init attempts" if attempts != "1" else ""
    return Outcome(
        f"Ray Data (batch {batch}, {concurrency} actor{retried})",
        n / seconds,
        n / float(run_seconds),
        peak,
    )


def run_mlserver_infer(folder: Path, model: Path, src: Path, out: Path, n: int) -> Outcome:
    """`mlserver infer -w 4 -s 256` against a pre-started MLServer; the requests file (one V2
    request of one row per record, as `mlserver infer` batches them) is written untimed."""
    bin_dir = ensure_venv("mlserver")
    requests = folder / "mlserver-requests.jsonl"
    with src.open("rb") as fin, requests.open("wb") as fout:
        for line in fin:
            r = orjson.loads(line)
            request = {
                "id": str(r["id"]),
                "inputs": [
                    {
                        "name": "predict",
                        "shape": [1, 4],
                        "datatype": "FP64",
                        "data": [r[f] for f in FEATURES],
                    }
                ],
            }
            fout.write(orjson.dumps(request, option=orjson.OPT_APPEND_NEWLINE))
    proc, url = _svc.start_mlserver(folder, model, bin_dir / "mlserver")
    try:
        seconds, peak, _ = timed_process(
            [
                str(bin_dir / "mlserver"),
                "infer",
                "-u",
                url.removeprefix("http://"),
                "-m",
                "iris",
                "-i",
                str(requests),
                "-o",
                str(out),
                "-w",
                "4",
                "-s",
                "256",
            ],
            env=peer_env(),
        )
    finally:
        _svc.stop(proc)
    lines = sum(1 for _ in out.open("rb"))
    if lines != n:
        raise SystemExit(f"mlserver infer: {lines} outputs for {n} inputs")
    return Outcome("mlserver infer (-w 4 -s 256)", n / seconds, None, peak)


def run_flow(folder: Path, src: Path, url: str, n: int) -> tuple[Outcome, Path]:
    """The flow with default settings: whole-process and in-run records/s."""
    began = time.perf_counter()
    rate, count, peak, _ = _flow.run_flow_cpu(
        folder=folder, src=src, url=url, batch=None, concurrency=None, keep=True
    )
    seconds = time.perf_counter() - began
    assert count == n, count
    return Outcome("tekscore flow", n / seconds, rate, peak), folder / "flow-out.jsonl"


def one_size(
    args: argparse.Namespace, folder: Path, model: Path, url: str, n: int
) -> list[Outcome]:
    src = folder / f"input-{n}.jsonl"
    _flow.write_records(src, n)
    print(f"\n{n:,} records ({src.stat().st_size / 2**20:.0f} MiB); {load_average()}", flush=True)
    limit_out = folder / "limit-out.jsonl"
    began = time.perf_counter()
    limit_rate, _ = _flow.limit_cpu(model, src, limit_out, _flow.DEFAULT_BATCH)
    outcomes = [Outcome("limit (1 process)", n / (time.perf_counter() - began), limit_rate, 0)]
    expected = labels_of(limit_out)
    flow, flow_out = run_flow(folder, src, url, n)
    check("tekscore flow", flow_out, expected)
    outcomes.append(flow)
    runners: list[tuple[str, Callable[[Path], Outcome]]] = [
        ("pandas", lambda out: run_pandas(model, src, out, n)),
        (
            "ray",
            lambda out: run_ray(
                model, src, out, n, batch=args.ray_batch, concurrency=args.ray_concurrency
            ),
        ),
    ]
    if not args.no_mlserver:
        runners.append(("mlserver", lambda out: run_mlserver_infer(folder, model, src, out, n)))
    for name, runner in runners:
        if name in args.skip:
            continue
        out = folder / f"{name}-out"
        outcome = runner(out)
        if name != "mlserver":  # its output holds tensors, not records: counted above
            check(outcome.name, out, expected)
        outcomes.append(outcome)
        print(f"  {outcome.name}: done; {load_average()}", flush=True)
    report(n, outcomes)
    return outcomes


def report(n: int, outcomes: list[Outcome]) -> None:
    limit = outcomes[0].run or outcomes[0].whole
    flow = outcomes[1]
    print(
        f"{'contender':<34} {'whole rec/s':>12} {'run rec/s':>11} {'peak RSS':>9} "
        f"{'run/limit':>9} {'flow/it (whole)':>15}"
    )
    for o in outcomes:
        run = f"{o.run:,.0f}" if o.run else "-"
        ratio = f"{(o.run or o.whole) / limit:.2f}x"
        vs = f"{flow.whole / o.whole:.2f}x" if o is not flow else ""
        rss = f"{o.peak_kib / 1024:.0f} MiB" if o.peak_kib else "-"
        print(f"{o.name:<34} {o.whole:>12,.0f} {run:>11} {rss:>9} {ratio:>9} {vs:>15}")
    print(
        f"targets: flow run >= 1.0x the limit (now {(flow.run or 0) / limit:.2f}x); "
        f"flow >= 2.5x Ray Data at 1,000,000 records ({n:,} here)"
    )


def chart(path: Path, results: dict[int, list[Outcome]]) -> None:
    """Grouped bars: records/s of each contender per size, whole process and run alone."""
    groups: list[str] = []
    series: dict[str, list[int]] = {}
    for n, outcomes in results.items():
        groups += [f"{n:,} records, whole process", f"{n:,} records, run alone"]
        for o in outcomes:
            series.setdefault(o.name, []).extend([round(o.whole), round(o.run or 0)])
    data = {
        "title": "Batch file -> score -> file, iris: records/s (2 shared cores; see the load)",
        "groups": groups,
        "series": series,
    }
    sibling("charts").bars(path, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, action="append", help="repeatable; 50000 if none")
    parser.add_argument("--ray-batch", type=int, default=1024)
    parser.add_argument("--ray-concurrency", type=int, default=1)
    parser.add_argument("--no-mlserver", action="store_true")
    parser.add_argument("--skip", nargs="*", default=[], choices=["pandas", "ray", "mlserver"])
    parser.add_argument("--chart", type=Path, help="write a PNG bar chart there")
    args = parser.parse_args()
    sizes = args.records or [50_000]
    print(f"start: {load_average()}, {os.cpu_count()} cpus", flush=True)
    # the peers' venvs first, so no install lands inside a timed run
    for name in ("pandas", "ray", *(() if args.no_mlserver else ("mlserver",))):
        if name not in args.skip:
            ensure_venv(name)
    results: dict[int, list[Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        folder = Path(tmp)
        model = _flow.train(folder)
        service = _flow.Service(model, folder)
        try:
            for n in sizes:
                results[n] = one_size(args, folder, model, service.url, n)
        finally:
            service.stop()
    if args.chart:
        chart(args.chart, results)
        print(f"chart: {args.chart}")
    print(json.dumps({n: [o.__dict__ for o in r] for n, r in results.items()}))


if __name__ == "__main__":
    main()
