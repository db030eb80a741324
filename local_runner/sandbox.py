"""The bubblewrap sandbox of a job's processes on the local backend (docs/security.md).

`Sandbox.wrap` turns a command into a `bwrap ... -- command` line: an empty root with a
read-only view of the system (`/usr` and its merged-usr links, the few files of `/etc` a process
needs), of this Python (its prefixes and import path) and of the code sources; the data roots
read-write (over whatever they lie in); the server's state folder hidden under an empty tmpfs,
and of it only the job's own folder shown again, read-only except the process's private folder
and its termination record; a private `/tmp`, `/dev`, and a new PID namespace with its `/proc`.
The network is shared (flows reach their services and the server on loopback). Not
`--die-with-parent`: jobs outlive a restart of the server, which re-attaches to them.

`detect` finds `bwrap` and proves it can run here (a container may lack the namespaces it
needs); it runs one short process, the module's only I/O besides `os.path` checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Mode = Literal["required", "auto", "off"]

SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")
"""System folders shown read-only (symlinks, as on merged-usr systems, are recreated)."""
ETC = (
    "alternatives", "ca-certificates", "ssl", "resolv.conf", "hosts", "host.conf", "gai.conf",
    "nsswitch.conf", "localtime", "timezone", "passwd", "group", "ld.so.cache", "ld.so.conf",
    "ld.so.conf.d", "mime.types", "protocols", "services",
)  # fmt: skip
"""What of `/etc` a process needs: TLS roots, name resolution, time zone, users, the linker."""
ETC_PATTERNS = ("java-*",)
"""`/etc` folders matched by name: the Java runtime's configuration (Debian's OpenJDK links
its `conf/` there; the pmml runtime's JVM will not start without `java.security`)."""


class SandboxUnavailable(RuntimeError):
    """`--sandbox required`, and bubblewrap is missing or cannot run here."""


@dataclass(frozen=True)
class Sandbox:
    """How to run a job's processes in bubblewrap; one per server (the paths are its settings)."""

    bwrap: str
    home: Path
    data_roots: tuple[Path, ...] = ()
    code_folders: tuple[Path, ...] = ()
    python: tuple[Path, ...] = ()
    readable: tuple[Path, ...] = ()
    """More folders shown read-only (pip's local package folder)."""
    shared: tuple[Path, ...] = ()
    """Folders every job may write (the shared environment cache of python models)."""

    def wrap(
        self,
        command: Sequence[str],
        *,
        job_dir: Path,
        private: Path,
        writable: Iterable[Path] = (),
    ) -> list[str]:
        """`command` run inside the sandbox: `job_dir` read-only but for `private` (its HOME and
        TMPDIR) and the files of `writable` (which must exist: its termination record)."""
        args = [self.bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        # a private /tmp and /dev/shm inside the sandbox, not the host's
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]  # noqa: S108
        for folder in SYSTEM:
            args += _show(Path(folder), writable=False)
        for name in ETC:
            args += _show(Path("/etc") / name, writable=False)
        for pattern in ETC_PATTERNS:
            for path in sorted(Path("/etc").glob(pattern)):
                args += _show(path, writable=False)
        # later mounts cover earlier ones: the data roots come last, writable even inside a code
        # source or the Python install (`tekscore run`: the IR's folder is both a data root and
        # a code source; `make demo`: it is inside the editable install's source folder)
        for path in _outermost([*self.python, *self.code_folders, *self.readable]):
            args += _show(path, writable=False)
        for path in [*self.data_roots, *self.shared]:
            args += _show(path, writable=True)
        args += ["--tmpfs", str(self.home)]  # the state folder: nothing of it, then the job's
        args += ["--ro-bind", str(job_dir), str(job_dir)]
        args += ["--bind", str(private), str(private)]
        for path in writable:
            args += ["--bind", str(path), str(path)]
        args += ["--chdir", str(job_dir), "--", *command]
        return args


def _show(path: Path, *, writable: bool) -> list[str]:
    """The arguments that make `path` appear at the same place (nothing when it is missing)."""
    if path.is_symlink():
        return ["--symlink", os.readlink(path), str(path)]
    if not path.exists():
        return []
    return ["--bind" if writable else "--ro-bind", str(path), str(path)]


def _outermost(paths: Iterable[Path]) -> list[Path]:
    """The paths, without those inside another of them (one bind shows both)."""
    unique = sorted({p for p in paths if p.exists()}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in unique:
        if not any(path == k or k in path.parents for k in kept):
            kept.append(path)
    return kept


def python_paths() -> tuple[Path, ...]:
    """What this Python needs to run `tekscore` again: its prefixes, its import path (an
    editable install's source folder too) and the folder of its executable."""
    found = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    found += [p for p in sys.path if p and os.path.isabs(p)]
    found.append(str(Path(sys.executable).parent))
    return tuple(Path(os.path.realpath(p)) for p in dict.fromkeys(found))


def find_bwrap() -> str | None:
    """The `bwrap` executable on PATH, if any."""
    return shutil.which("bwrap")


def probe(bwrap: str) -> str | None:
    """None when `bwrap` can make a sandbox here, else what it said."""
    try:
        done = subprocess.run(
            [bwrap, "--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "--dev", "/dev",
             "--", "true"],
            capture_output=True,
            timeout=30,
            check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        return done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}"
    return None


def detect(mode: Mode) -> tuple[str | None, str | None]:
    """(the bwrap to use or None, a warning to log once or None) for `--sandbox mode`; raises
    `SandboxUnavailable` when `required` and there is no working bwrap."""
    if mode == "off":
        return None, None
    bwrap = find_bwrap()
    problem = "bwrap (Debian package bubblewrap) is not installed" if bwrap is None else None
    if bwrap is not None:
        said = probe(bwrap)
        if said is not None:
            problem = f"bwrap cannot make a sandbox here: {said}"
    if problem is None:
        return bwrap, None
    if mode == "required":
        raise SandboxUnavailable(f"--sandbox required, but {problem}")
    return None, (
        f"{problem}: job processes run without a sandbox, as the server's user "
        "(--sandbox off hides this warning, --sandbox required refuses to start)"
    )
