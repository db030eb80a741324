"""Bar charts of the benchmarks' results as PNG files under docs/.

matplotlib is not one of the project's dependencies: the chart is drawn by a small script run in
the `plot` venv of `bench/venvs.py` (created on first use), fed the data as JSON. I/O: writes
the PNG, may create the venv.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from venvs import ensure_venv

DRAW = """
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
data = json.load(sys.stdin)
groups, series = data["groups"], data["series"]
width = 0.8 / max(len(series), 1)
fig, ax = plt.subplots(figsize=(max(7, 0.9 * len(groups) * max(len(series), 1)), 4))
for i, (name, values) in enumerate(series.items()):
    xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(values))]
    bars = ax.bar(xs, values, width, label=name)
    ax.bar_label(bars, labels=[f"{v:,.0f}" if v else "-" for v in values], fontsize=7, padding=2)
ax.set_xticks(range(len(groups)), groups)
ax.set_ylabel(data.get("unit", "records/s"))
ax.set_title(data["title"], fontsize=10)
if data.get("log"):
    ax.set_yscale("log")
ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
ax.spines[["top", "right"]].set_visible(False)
fig.savefig(sys.argv[1], dpi=100, bbox_inches="tight")
"""


def bars(path: Path, data: dict[str, Any]) -> None:
    """A grouped bar chart: `data` holds `title`, `groups` (x labels), `series` (name -> one
    value per group; 0 for none, drawn as "-"), optionally `unit` and `log` (a log scale)."""
    python = ensure_venv("plot") / "python"
    subprocess.run(
        [str(python), "-c", DRAW, str(path)], input=json.dumps(data).encode(), check=True
    )
