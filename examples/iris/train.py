"""Train the iris classifier from the data scikit-learn ships (no download) and write the
example's files: `model.joblib` and `input.jsonl` (the records to score).

Run: `python examples/iris/train.py [--out DIR] [--records N]`. Deterministic: the same
arguments write byte-identical `input.jsonl` and an equivalent model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
HERE = Path(__file__).resolve().parent


def train(out_dir: Path = HERE) -> Path:
    """Fit a scaler + logistic regression on iris, write `model.joblib`, return its path."""
    data = load_iris()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(data.data, np.asarray(data.target_names)[data.target])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.joblib"
    joblib.dump(model, path)
    return path


def make_records(count: int = 150, seed: int = 7) -> list[dict[str, float | int]]:
    """`count` iris-like records: the real 150 rows, then jittered copies, each with an `id`."""
    data = load_iris()
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        base = data.data[i % len(data.data)]
        values = base if i < len(data.data) else base + rng.normal(0, 0.1, size=4)
        record: dict[str, float | int] = {"id": i}
        record.update({f: round(float(v), 2) for f, v in zip(FEATURES, values, strict=True)})
        rows.append(record)
    return rows


def write_records(path: Path, count: int = 150) -> Path:
    """Write `count` records as JSON lines to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for record in make_records(count):
            f.write(json.dumps(record) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--records", type=int, default=150)
    args = parser.parse_args()
    model = train(args.out)
    records = write_records(args.out / "input.jsonl", args.records)
    print(f"wrote {model} and {records} ({args.records} records)")


if __name__ == "__main__":
    main()
