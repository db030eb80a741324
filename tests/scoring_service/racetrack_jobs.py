"""Racetrack job folders written as Racetrack documents them (`job.yaml`, an entrypoint file
with a helper class beside the job's class, `requirements.txt`), and a wheel built here so the
requirements install offline (`PIP_NO_INDEX`, `PIP_FIND_LINKS`)."""

from __future__ import annotations

import base64
import hashlib
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import yaml

ADDER = """
    import tinyadd


    class Helper:
        \"\"\"A helper that happens to have perform too.\"\"\"

        def perform(self, x):
            return x


    class AdderModel:
        def perform(self, numbers: list[float]) -> float:
            \"\"\"Add numbers.\"\"\"
            return tinyadd.add(numbers)

        def docs_input_example(self) -> dict:
            return {"numbers": [40, 2]}
"""


def build_wheel(folder: Path, name: str = "tinyadd", version: str = "0.1") -> Path:
    """A pure-python wheel of a package `name` with `add(xs) -> sum(xs)`."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"def add(xs):\n    return sum(xs)\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: tekscore-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def write_job(
    folder: Path,
    *,
    name: str = "adder",
    code: str = ADDER,
    requirements: str | None = "tinyadd==0.1\n",
    extra: dict[str, Any] | None = None,
    **manifest: Any,
) -> Path:
    """A job folder: `job.yaml` (the python-class sample's, with requirements), `adder.py`."""
    folder.mkdir(parents=True, exist_ok=True)
    jobtype_extra: dict[str, Any] = {
        "entrypoint_path": "adder.py",
        "entrypoint_class": "AdderModel",
        **(extra or {}),
    }
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
        jobtype_extra["requirements_path"] = "requirements.txt"
    doc = {
        "name": name,
        "owner_email": "sample@example.com",
        "jobtype": "python3:latest",
        "version": "0.0.2",
        "git": {
            "remote": "https://github.com/theracetrack/racetrack",
            "directory": "sample/python-class",
        },
        "jobtype_extra": jobtype_extra,
        **manifest,
    }
    (folder / "job.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (folder / "adder.py").write_text(textwrap.dedent(code))
    return folder


def offline_pip(wheels: Path, cache: Path) -> dict[str, str]:
    """The environment that makes pip install from `wheels` only, into the env cache `cache`."""
    return {
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "TEKSCORE_VENV_CACHE": str(cache),
    }
