"""Fixtures of the chart tests: values files of the iris example and of generated pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.charts.helpers import SCORING_CHART, render_ir, template, values_of_paths

BIG_FLOWS = 200


def big_pipeline_ir(flows: int = BIG_FLOWS) -> dict[str, str]:
    """IR text of a pipeline with `flows` flows over file, s3 and kafka channels.

    Every third flow reads s3 and every third writes kafka, both with credentials as secretRefs;
    batch and streaming alternate; every fifth batch flow has 4 shards; one service is external.
    """
    channels = """
apiVersion: tekscore.dev/v1
kind: DataChannel
metadata: {name: s3-in}
spec:
  direction: source
  type: s3
  config:
    bucket: scoring-input
    key: records.jsonl
    endpointUrl: https://s3.example.com
    accessKeyId: {secretRef: {name: s3-creds, key: access-key-id}}
    secretAccessKey: {secretRef: {name: s3-creds, key: secret-access-key}}
---
apiVersion: tekscore.dev/v1
kind: DataChannel
metadata: {name: kafka-out}
spec:
  direction: sink
  type: kafka
  config:
    bootstrapServers: kafka:9092
    topic: scored
    securityProtocol: SASL_SSL
    saslMechanism: SCRAM-SHA-512
    username: {secretRef: {name: kafka-creds, key: username}}
    password: {secretRef: {name: kafka-creds, key: password}}
---
apiVersion: tekscore.dev/v1
kind: DataChannel
metadata: {name: file-in}
spec: {direction: source, type: file, config: {path: /data/in.jsonl}}
---
apiVersion: tekscore.dev/v1
kind: DataChannel
metadata: {name: file-out}
spec: {direction: sink, type: file, config: {path: /data/out.jsonl}}
---
apiVersion: tekscore.dev/v1
kind: DataChannel
metadata: {name: http-in}
spec: {direction: source, type: http, config: {port: 8085}}
---
apiVersion: tekscore.dev/v1
kind: DataChannel
metadata: {name: nowhere}
spec: {direction: sink, type: discard}
"""
    models = """
apiVersion: tekscore.dev/v1
kind: Model
metadata: {name: churn}
spec: {type: sklearn, uri: "https://models.example.com/churn.joblib"}
---
apiVersion: tekscore.dev/v1
kind: Model
metadata: {name: fraud}
spec: {type: external, uri: "http://triton.models.svc:8000"}
"""
    flow_docs = []
    names = []
    for i in range(flows):
        name = f"flow-{i:03d}"
        names.append(name)
        batch = i % 2 == 0
        if i % 7 == 6:
            source, sink, batch = "http-in", "nowhere", False
        else:
            source = "s3-in" if i % 3 == 0 else "file-in"
            # replicas of a streaming flow share no file: they write to Kafka
            sink = "kafka-out" if i % 3 == 1 or not batch else "file-out"
        extra = ""
        if batch and i % 5 == 0:
            extra = "\n  shards: 4"
        elif not batch:
            extra = "\n  replicas: 2"
        model = "fraud" if i % 11 == 0 else "churn"
        flow_docs.append(
            f"""apiVersion: tekscore.dev/v1
kind: ScoringFlow
metadata: {{name: {name}}}
spec:
  mode: {"batch" if batch else "streaming"}
  source: {source}
  sink: {sink}
  steps: [{{type: score, model: {model}}}]{extra}
"""
        )
    pipeline = f"""apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {{name: big}}
spec:
  models: [churn, fraud]
  scoringServices:
    - name: churn-svc
      runtime: python
      models: [churn]
      replicas: 3
      resources:
        requests: {{cpu: 500m, memory: 512Mi}}
        limits: {{cpu: 2, memory: 1Gi}}
  scoringFlows: [{", ".join(names)}]
"""
    return {
        "pipeline.yaml": pipeline,
        "channels.yaml": channels,
        "models.yaml": models,
        "flows.yaml": "---\n".join(flow_docs),
    }


@pytest.fixture(scope="session")
def iris_batch_values(iris_dir: Path) -> dict[str, Any]:
    """Values of examples/iris batch.yaml (as `tekscore render` emits them)."""
    return values_of_paths([iris_dir / "model.yaml", iris_dir / "batch.yaml"])


@pytest.fixture(scope="session")
def iris_streaming_values(iris_dir: Path) -> dict[str, Any]:
    """Values of examples/iris streaming.yaml."""
    return values_of_paths([iris_dir / "model.yaml", iris_dir / "streaming.yaml"])


@pytest.fixture(scope="session")
def big_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Values of a generated pipeline with BIG_FLOWS flows (secretRefs, shards, http, external)."""
    base = tmp_path_factory.mktemp("big")
    return render_ir(big_pipeline_ir(), base_dir=base)


@pytest.fixture(scope="session")
def big_objects(
    big_values: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    """The objects `helm template` renders from `big_values` (rendered once per session)."""
    return template(
        SCORING_CHART, big_values, tmp_path=tmp_path_factory.mktemp("big-render"), release="big"
    )
