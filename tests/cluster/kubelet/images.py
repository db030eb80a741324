"""The test kubelet's image table (pure): which local files stand in for a container image.

There is no container runtime: every container sees a read-only view of this machine's
filesystem, and an image adds only its ENTRYPOINT/CMD, environment, working folder and a few
paths bound into that view:

| image | stands in with |
|---|---|
| `*tekscore/tekscore*` (the project's image) | the checkout's `.venv/bin/tekscore` as ENTRYPOINT, `.venv/bin` and `.tools/bin` (helm) on PATH, the repo's `charts/` at `/app/charts`, the Dockerfile's environment |
| `ghcr.io/tektoncd/pipeline/entrypoint*` | `entrypoint.py` (Tekton's entrypoint stand-in) at `/ko-app/entrypoint` |
| `*kaniko-project/executor*` | `kaniko.py` (records what it would build) at `/kaniko/executor` |
| `*busybox*`, `*/bash*`, `*alpine*` | the host's shell and tools |

Any other image fails like a missing image: `ErrImagePull`, then `ImagePullBackOff`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENTRYPOINT_STANDIN = Path(__file__).with_name("entrypoint.py")
KANIKO_STANDIN = Path(__file__).with_name("kaniko.py")


@dataclass(frozen=True)
class Image:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    binds: dict[str, str] = field(default_factory=dict)  # path in the container -> host path


class ImageTable:
    def __init__(self, *, repo: Path) -> None:
        venv_bin, tools_bin = repo / ".venv" / "bin", repo / ".tools" / "bin"
        tekscore = Image(
            entrypoint=(str(venv_bin / "tekscore"),),
            cmd=("--help",),
            env={
                "PATH": f"{venv_bin}:{tools_bin}:{HOST_PATH}",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1",
                "HOME": "/tmp",
                "TEKSCORE_HOME": "/tmp/tekscore",
                "HELM_CACHE_HOME": "/tmp/helm/cache",
                "HELM_CONFIG_HOME": "/tmp/helm/config",
                "HELM_DATA_HOME": "/tmp/helm/data",
            },
            workdir="/app",
            binds={"/app/charts": str(repo / "charts")},
        )
        shell = Image(env={"PATH": HOST_PATH})
        self.table: list[tuple[str, Image]] = [
            ("*tekscore/tekscore*", tekscore),
            (
                "ghcr.io/tektoncd/pipeline/entrypoint*",
                Image(
                    env={"PATH": HOST_PATH}, binds={"/ko-app/entrypoint": str(ENTRYPOINT_STANDIN)}
                ),
            ),
            (
                "*kaniko-project/executor*",
                Image(env={"PATH": HOST_PATH}, binds={"/kaniko/executor": str(KANIKO_STANDIN)}),
            ),
            ("*busybox*", shell),
            ("*bash*", shell),
            ("*alpine*", shell),
        ]

    def get(self, image: str) -> Image | None:
        for pattern, found in self.table:
            if fnmatch.fnmatch(image, pattern):
                return found
        return None
