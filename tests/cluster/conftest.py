"""Fixtures of the cluster suite: one real control plane per session (../shared/cluster or
$TEKSCORE_CLUSTER_ASSETS), the test kubelet, and the platform chart installed with real helm
(`tests/cluster/cluster.py`). Skipped with the reason when this machine cannot run it.

The tests drive the product only through its HTTP API, its CLI and kubectl, never by importing
the scheduler, so they hold whatever the scheduler's insides become."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import cluster as cl
from tests.cluster.jobs import Jobs


@pytest.fixture(scope="session")
def cluster() -> Iterator[cl.Cluster]:
    try:
        started = cl.start(backoff=2.0)
    except cl.Unavailable as exc:
        pytest.skip(f"test cluster unavailable: {exc}")
    try:
        yield started
    finally:
        cl.stop(started)


@pytest.fixture
def jobs(cluster: cl.Cluster) -> Iterator[Jobs]:
    with Jobs(cluster) as client:
        yield client


@pytest.fixture
def iris_copy(cluster: cl.Cluster, iris_dir: Path) -> Path:
    """The iris example in the cluster's shared folder (read-write in every pod, like a shared
    filesystem), so its relative paths (input, output, model) resolve to writable places."""
    folder = cluster.data / f"iris-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    for name in ("model.yaml", "batch.yaml", "streaming.yaml", "input.jsonl", "model.joblib"):
        shutil.copy(iris_dir / name, folder / name)
    return folder
