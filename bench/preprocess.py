"""Benchmark of IR pre-processing: generated pipelines of 10, 100, 1,000 and 5,000 flows.

Prints, per size, seconds for load + pre-process (best of a few runs) and the growth ratio
against the previous size relative to the flow-count ratio; the targets (issue 2) are printed
with a verdict: growth stays linear (5,000 flows within 6x the time of 1,000) and 1,000 flows
take under one second on this machine.

Run: `.venv/bin/python bench/preprocess.py [--sizes 10,100,1000,5000]`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ir

HEAD = "apiVersion: tekscore.dev/v1\n"


def generate(flows: int) -> dict[str, str]:
    """IR text of a pipeline with `flows` flows, 2 channels each, and a model per 10 flows."""
    models = max(1, flows // 10)
    pipeline = (
        f"{HEAD}kind: ScoringPipeline\nmetadata: {{name: bench}}\nspec:\n"
        "  parameters:\n"
        "    bs: {type: integer, default: 128}\n"
        "    root: {type: string, default: /data}\n"
    )
    model_docs = [
        f"{HEAD}kind: Model\nmetadata: {{name: m{i}}}\nspec: {{type: sklearn, uri: 'file:///models/m{i}.joblib'}}\n"
        for i in range(models)
    ]
    channel_docs = []
    flow_docs = []
    for i in range(flows):
        channel_docs.append(
            f"{HEAD}kind: DataChannel\nmetadata: {{name: in-{i}}}\n"
            f"spec: {{direction: source, type: file, config: {{path: '${{root}}/in-{i}.jsonl'}}}}\n"
        )
        channel_docs.append(
            f"{HEAD}kind: DataChannel\nmetadata: {{name: out-{i}}}\n"
            f"spec: {{direction: sink, type: file, config: {{path: '${{root}}/out-{i}.jsonl'}}}}\n"
        )
        flow_docs.append(
            f"{HEAD}kind: ScoringFlow\nmetadata: {{name: flow-{i}}}\nspec:\n"
            f"  source: in-{i}\n  sink: out-{i}\n  batchSize: ${{bs}}\n"
            f"  steps:\n    - {{type: score, model: m{i % models}}}\n"
            "    - {type: map, rename: {prediction: label}}\n"
        )
    return {
        "pipeline.yaml": pipeline,
        "models.yaml": "---\n".join(model_docs),
        "channels.yaml": "---\n".join(channel_docs),
        "flows.yaml": "---\n".join(flow_docs),
    }


def measure(flows: int, repeat: int) -> float:
    files = generate(flows)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        rendered = ir.preprocess(ir.load_texts(files, base_dir=Path("/")))
        best = min(best, time.perf_counter() - start)
    assert len(rendered.values["scoringFlows"]) == flows
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description="IR pre-processing benchmark")
    parser.add_argument("--sizes", default="10,100,1000,5000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, float] = {}
    print(f"{'flows':>7} {'seconds':>9} {'flows/s':>9} {'time ratio':>11} {'size ratio':>11}")
    previous: int | None = None
    for size in sizes:
        seconds = measure(size, repeat=3)
        results[size] = seconds
        ratio = f"{seconds / results[previous]:.2f}x" if previous else "-"
        size_ratio = f"{size / previous:.0f}x" if previous else "-"
        print(f"{size:>7} {seconds:>9.3f} {size / seconds:>9.0f} {ratio:>11} {size_ratio:>11}")
        previous = size
    if 1000 in results and 5000 in results:
        growth = results[5000] / results[1000]
        verdict = "ok" if growth <= 6 else "MISSED"
        print(f"growth 1,000 -> 5,000 flows: {growth:.2f}x (target <= 6x, linear is 5x): {verdict}")
    if 1000 in results:
        verdict = "ok" if results[1000] < 1 else "MISSED"
        print(f"1,000 flows: {results[1000]:.3f} s (target < 1 s): {verdict}")


if __name__ == "__main__":
    main()
