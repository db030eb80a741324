"""Benchmark of the Kubernetes path on the test cluster (tests/cluster: the real apiserver,
controller-manager and Tekton controller, the test kubelet, the platform chart installed by helm,
the scheduler as its pod). Prints, asserts nothing.

1. **Job.** The iris batch job (150 records, or `--records N` iris-like records) submitted
   `--repeat` times through the scheduler's Service, one at a time. Measured from the client:
   `POST /api/v1/jobs` until the answer (the PipelineRun exists then: the scheduler creates it
   before answering; checked with a GET of the PipelineRun), until the first record is scored
   (the flow pod's own `/metrics` shows `records_out > 0`, polled every 20 ms at its Pod IP), and
   until the job reads SUCCEEDED; plus the phases from the job's `/events`.
2. **API.** 1,000 PipelineRuns created directly (`spec.status: PipelineRunPending`, so Tekton
   leaves them alone) with the labels and annotations of jobs, so the scheduler's watch cache
   holds 1,000 jobs. Measured: `GET /api/v1/jobs/{id}` (random ids), `GET /api/v1/jobs?limit=50`,
   and the same with a label filter, one connection, through the Service (the kubelet's relay);
   baseline: the same server's `GET /healthz` on the same path, so the ratio is what the job
   lookups cost over a bare endpoint.

Run (as root, with ../shared beside the checkout or $TEKSCORE_CLUSTER_ASSETS):
`.venv/bin/python bench/cluster.py [--repeat 3] [--records 150] [--runs 1000] [--requests 300]`.
Starts and stops the whole test cluster (about 40 s of it is starting).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cluster import cluster as cl  # noqa: E402

IRIS = ROOT / "examples" / "iris"
OUT_METRIC = "tekscore_flow_records_out_total"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def iris_folder(base: Path, records: int) -> Path:
    folder = base / f"bench-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True)
    for name in ("model.yaml", "batch.yaml", "model.joblib"):
        shutil.copy(IRIS / name, folder / name)
    source = (IRIS / "input.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in source]
    with (folder / "input.jsonl").open("w") as out:
        for i in range(records):
            row = dict(rows[i % len(rows)], id=i)
            out.write(json.dumps(row) + "\n")
    return folder


def body(folder: Path) -> dict[str, Any]:
    return {
        "pipeline": {"files": {n: (folder / n).read_text() for n in ("model.yaml", "batch.yaml")}},
        "parameters": {},
        "base_dir": str(folder),
    }


def admin(cluster: cl.Cluster) -> httpx.Client:
    return httpx.Client(
        base_url=cluster.env["APISERVER_URL"],
        verify=ssl.create_default_context(cafile=cluster.env["CA_CERT"]),
        headers={"Authorization": f"Bearer {cluster.env['ADMIN_TOKEN']}"},
        trust_env=False,
        timeout=30,
    )


def first_scored(api: httpx.Client, job_id: str, deadline: float) -> float | None:
    """When the flow's /metrics first shows records_out > 0 (its pod found through the API)."""
    path = f"/api/v1/namespaces/{cl.JOBS_NS}/pods"
    ip = None
    with httpx.Client(trust_env=False, timeout=2) as http:
        while time.monotonic() < deadline:
            if ip is None:
                pods = api.get(
                    path,
                    params={
                        "labelSelector": f"tekscore.dev/job={job_id},"
                        "app.kubernetes.io/component=scoring-flow"
                    },
                ).json()
                ips = [p["status"].get("podIP") for p in pods.get("items") or []]
                ip = next((i for i in ips if i), None)
            else:
                try:
                    text = http.get(f"http://{ip}:9090/metrics").text
                except httpx.HTTPError:
                    text = ""
                for line in text.splitlines():
                    if line.startswith(OUT_METRIC) and float(line.rsplit(" ", 1)[1]) > 0:
                        return time.monotonic()
            time.sleep(0.02)
    return None


def job_bench(cluster: cl.Cluster, args: argparse.Namespace) -> None:
    folder = iris_folder(cluster.data, args.records)
    headers = {"Authorization": f"Bearer {cluster.api_token}"}
    rows = []
    with (
        httpx.Client(
            base_url=cluster.scheduler_url, headers=headers, trust_env=False, timeout=60
        ) as http,
        admin(cluster) as api,
    ):
        for _ in range(args.repeat):
            started = time.monotonic()
            answer = http.post("/api/v1/jobs", json=body(folder))
            posted = time.monotonic()
            answer.raise_for_status()
            job_id = answer.json()["id"]
            run = api.get(f"/apis/tekton.dev/v1/namespaces/{cl.JOBS_NS}/pipelineruns/{job_id}")
            exists = run.status_code == 200
            scored = first_scored(api, job_id, started + 300)
            while True:
                job = http.get(f"/api/v1/jobs/{job_id}").json()
                if job["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                    break
                time.sleep(0.05)
            done = time.monotonic()
            events = http.get(f"/api/v1/jobs/{job_id}/events").json()
            stamps = {e["state"]: e["at"] for e in events}
            rows.append(
                (
                    job["state"],
                    posted - started,
                    exists,
                    (scored - started) if scored else None,
                    done - started,
                    stamps,
                )
            )
            time.sleep(2)
    print(f"\n## Job: iris batch, {args.records} records, {args.repeat} runs ({load()})")
    print("| run | state | POST -> PipelineRun exists | -> first record scored | -> SUCCEEDED |")
    print("|---|---|---|---|---|")
    for i, (state, post, exists, scored, done, _) in enumerate(rows, 1):
        first = f"{scored:.2f} s" if scored else "not seen"
        print(
            f"| {i} | {state} | {post * 1000:.0f} ms ({'yes' if exists else 'NO'}) | {first} "
            f"| {done:.2f} s |"
        )
    if rows:
        print(f"median -> SUCCEEDED: {statistics.median(r[4] for r in rows):.2f} s")


def pending_runs(count: int) -> dict[str, Any]:
    """`count` PipelineRuns shaped like jobs, pending (Tekton does not start them)."""
    items = []
    flows = json.dumps(
        {
            "flows": {"classify": {"mode": "batch", "state": "PENDING"}},
            "services": {},
        }
    )
    for i in range(count):
        name = f"j-bench{i:05d}"
        items.append(
            {
                "apiVersion": "tekton.dev/v1",
                "kind": "PipelineRun",
                "metadata": {
                    "name": name,
                    "namespace": cl.JOBS_NS,
                    "labels": {
                        "app.kubernetes.io/managed-by": "tekscore",
                        "tekscore.dev/job": name,
                        "tekscore.dev/pipeline": "bench",
                    },
                    "annotations": {
                        "tekscore.dev/labels": json.dumps({"tenth": str(i % 10 == 0)}),
                        "tekscore.dev/flows": flows,
                        "tekscore.dev/content-hash": "0" * 64,
                    },
                },
                "spec": {
                    "pipelineRef": {"name": "tekscore-scoring-job"},
                    "status": "PipelineRunPending",
                    "params": [{"name": "job-id", "value": name}],
                },
            }
        )
    return {"apiVersion": "v1", "kind": "List", "items": items}


def timed(http: httpx.Client, paths: list[str]) -> list[float]:
    out = []
    for path in paths:
        started = time.perf_counter()
        http.get(path).raise_for_status()
        out.append(time.perf_counter() - started)
    return out


def api_bench(cluster: cl.Cluster, args: argparse.Namespace) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(pending_runs(args.runs), f)
    cluster.kubectl("create", "-f", f.name, timeout=300)
    os.unlink(f.name)
    headers = {"Authorization": f"Bearer {cluster.api_token}"}
    with httpx.Client(
        base_url=cluster.scheduler_url, headers=headers, trust_env=False, timeout=30
    ) as http:

        def cached() -> bool:
            count, cursor = 0, None
            while True:
                params: dict[str, Any] = {"pipeline": "bench", "limit": 500}
                if cursor:
                    params["cursor"] = cursor
                page = http.get("/api/v1/jobs", params=params).json()
                count += len(page["items"])
                cursor = page.get("next")
                if not cursor:
                    return count >= args.runs

        cl.wait_for(f"{args.runs} jobs in the scheduler's cache", cached, timeout=300, interval=1)
        n = args.requests
        ids = [f"j-bench{random.randrange(args.runs):05d}" for _ in range(n)]
        cases = {
            "GET /healthz (baseline)": ["/healthz"] * n,
            "GET /api/v1/jobs/{id}": [f"/api/v1/jobs/{i}" for i in ids],
            "GET /api/v1/jobs?limit=50": ["/api/v1/jobs?limit=50"] * n,
            "GET /api/v1/jobs?label=tenth=True&limit=50": [
                "/api/v1/jobs?label=tenth%3DTrue&limit=50"
            ]
            * n,
        }
        timed(http, ["/healthz"] * 50)  # warm the connection and the relay
        results = {name: timed(http, paths) for name, paths in cases.items()}
    base = statistics.median(results["GET /healthz (baseline)"])
    print(
        f"\n## API: {args.runs} PipelineRuns in the watch cache, {n} requests each, "
        f"1 connection through the Service ({load()})"
    )
    print("| request | p50 | p95 | p50 / baseline |")
    print("|---|---|---|---|")
    for name, values in results.items():
        values.sort()
        p50, p95 = statistics.median(values), values[int(len(values) * 0.95) - 1]
        print(f"| {name} | {p50 * 1000:.2f} ms | {p95 * 1000:.2f} ms | {p50 / base:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--records", type=int, default=150)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--part", choices=["job", "api", "all"], default="all")
    args = parser.parse_args()
    started = time.monotonic()
    with cl.running(backoff=2.0) as cluster:
        print(
            f"# test cluster up in {time.monotonic() - started:.1f} s "
            f"({', '.join(f'{k} {v:.1f} s' for k, v in cluster.timings.items())})"
        )
        if args.part in ("job", "all"):
            job_bench(cluster, args)
        if args.part in ("api", "all"):
            api_bench(cluster, args)


if __name__ == "__main__":
    main()
