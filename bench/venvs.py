"""The peers' venvs of the benchmarks: each peer (MLServer, Ray, KServe, pandas, ...) lives in
its own venv under bench/ (their pins clash with ours), created on first use with pip from the
package index, then run offline.

I/O: creates `bench/.venv-<name>` and runs pip in it. A venv counts as ready only once pip has
installed exactly the pins asked for (recorded in the venv), so an interrupted install or a change
of pins is redone on the next run.

Run `python bench/venvs.py NAME...` to create them ahead of a benchmark (names: the keys of
`PEERS`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _ours(module: str, dist: str) -> str:
    """`dist==<our version>`: a peer scores with the same library version as ours."""
    return f"{dist}=={__import__(module).__version__}"


# name -> pins (callables give the pins that follow our own versions)
PEERS: dict[str, Callable[[], list[str]]] = {
    "mlserver": lambda: [
        "mlserver==1.7.1",
        "mlserver-sklearn==1.7.1",
        _ours("sklearn", "scikit-learn"),
    ],
    "mlserver-boosters": lambda: [
        "mlserver==1.7.1",
        "mlserver-xgboost==1.7.1",
        "mlserver-lightgbm==1.7.1",
        _ours("xgboost", "xgboost"),
        _ours("lightgbm", "lightgbm"),
        _ours("sklearn", "scikit-learn"),
    ],
    "ray": lambda: ["ray[data]==2.60.0", _ours("sklearn", "scikit-learn"), "orjson"],
    "kserve": lambda: ["kserve==0.21.0", _ours("sklearn", "scikit-learn")],
    "pandas": lambda: ["pandas>=2.2", _ours("sklearn", "scikit-learn")],
    "plot": lambda: ["matplotlib>=3.8"],
}


def ensure_venv(name: str) -> Path:
    """The bin folder of `bench/.venv-<name>`, creating the venv with its pins when missing."""
    pins = PEERS[name]()
    venv = HERE / f".venv-{name}"
    record = venv / "bench-pins.txt"
    wanted = "\n".join(pins) + "\n"
    if record.exists() and record.read_text() == wanted:
        return venv / "bin"
    print(f"creating {venv} ({', '.join(pins)}) ...", flush=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *pins], check=True)
    record.write_text(wanted)
    return venv / "bin"


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(ensure_venv(arg))
