"""Trying a pipeline without Kafka or S3 on the real control plane: the platform release is
upgraded with the `test-data` sub-chart on (real helm), its server runs as the chart's pod
under the test kubelet with the iris records as a sample from its ConfigMap; a job whose flow
reads that sample and writes to a test-data sink (`type: test-data` channels, by the Service's
name) succeeds, and the server keeps the 150 scored records. The release is set back after."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cluster.cluster import PLATFORM_NS, RELEASE, ROOT, Cluster, wait_for
from tests.cluster.jobs import Jobs, files_body

pytestmark = pytest.mark.timeout(900)  # the session's control plane may start here

SERVER = f"{RELEASE}-test-data"
URL = f"http://{SERVER}.{PLATFORM_NS}.svc:8080"


def _upgrade(cluster: Cluster, *args: str) -> None:
    cluster.helm(
        "upgrade",
        RELEASE,
        str(ROOT / "charts" / "tekscore"),
        "-n",
        PLATFORM_NS,
        "--reuse-values",
        *args,
        "--wait",
        "--timeout",
        "5m",
    )


@pytest.fixture
def test_data(cluster: Cluster, iris_dir: Path) -> Iterator[str]:
    """The test-data server's base URL from the host (its Service's ClusterIP)."""
    _upgrade(
        cluster,
        "--set",
        "test-data.enabled=true",
        "--set-file",
        f"test-data.samples.iris={iris_dir / 'input.jsonl'}",
    )
    try:
        ip = cluster.get("-n", PLATFORM_NS, "service", SERVER)["spec"]["clusterIP"]
        base = f"http://{ip}:8080"

        def answers() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=5, trust_env=False).is_success
            except httpx.TransportError:
                return False

        wait_for("the test-data Service to answer", answers, timeout=120)
        yield base
    finally:
        _upgrade(cluster, "--set", "test-data.enabled=false")
        gone = cluster.kubectl("-n", PLATFORM_NS, "get", "deployment", SERVER, check=False)
        assert gone.returncode != 0, gone.stdout


def test_a_job_scores_a_sample_into_a_sink_the_server_keeps(
    cluster: Cluster, jobs: Jobs, iris_copy: Path, iris_dir: Path, test_data: str
) -> None:
    sink = f"scored-{uuid.uuid4().hex[:6]}"
    pipeline = iris_copy / "try.yaml"
    pipeline.write_text(
        f"""apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {{name: iris-try}}
spec:
  models: [iris]
  scoringFlows: [classify]
---
apiVersion: tekscore.dev/v1
kind: DataChannel
metadata: {{name: iris-sample}}
spec:
  direction: source
  type: test-data
  config: {{url: "{URL}", name: iris}}
---
apiVersion: tekscore.dev/v1
kind: DataChannel
metadata: {{name: kept}}
spec:
  direction: sink
  type: test-data
  config: {{url: "{URL}", name: {sink}}}
---
apiVersion: tekscore.dev/v1
kind: ScoringFlow
metadata: {{name: classify}}
spec:
  mode: batch
  source: iris-sample
  sink: kept
  steps:
    - {{type: score, model: iris}}
"""
    )
    job = jobs.start(files_body([iris_copy / "model.yaml", pipeline]))
    done = jobs.wait(job["id"], "SUCCEEDED", timeout=400)
    flow = done["flows"]["classify"]
    assert (flow["state"], flow["records_in"], flow["records_out"], flow["records_failed"]) == (
        "COMPLETED",
        150,
        150,
        0,
    )
    inputs = [json.loads(line) for line in (iris_dir / "input.jsonl").read_text().splitlines()]
    kept = httpx.get(f"{test_data}/sinks/{sink}", timeout=10, trust_env=False)
    assert kept.status_code == 200, kept.text
    records = [json.loads(line) for line in kept.text.splitlines()]
    assert [r["id"] for r in records] == [r["id"] for r in inputs]
    assert {r["prediction"] for r in records} == {"setosa", "versicolor", "virginica"}
