"""The program of a warm spare: a Python that imports a runtime family's libraries ahead of need,
then waits to become exactly one job process (docs/local-backend.md, "Warm spares").

Run by the local runner (`local_runner.warm`), never imported by the server::

    python -P -m local_runner.spare --fd N --script /venv/bin/tekscore --preload a,b,c

It imports the `--preload` modules, says `ready` on the hand-over socket (file descriptor N, a
`SOCK_SEQPACKET` socket the runner keeps the other end of), and waits for one hand-over
message: the job process's command-line arguments, its whole environment, its working folder,
its memory limit, and as file descriptors its log (made its stdout and stderr) and, in the
sandbox, its termination record. Then it becomes that process: the environment replaced by the
message's (nothing of the spare's start is kept), the limit applied, and the `tekscore` script
run as `__main__` with those arguments, as `tekscore ARGS` would run. When the runner's end
closes before a hand-over (the server stopped), it exits.

Does I/O: the socket, the file descriptors it is given, `chdir`, `setrlimit`. Imports nothing of
ours but the modules it is told to preload (by name).
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import runpy
import socket
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

READY = b"ready"
MAX_MESSAGE = 4 * 1024 * 1024
"""The largest hand-over message (the environment with a job's secrets is most of it)."""
TERMINATION_ENV = "TEKSCORE_TERMINATION_LOG"  # common.termination's; not imported, kept light


def preload(names: Sequence[str]) -> None:
    """Import each module; one that fails is left for the job process to import (and report)."""
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the job process meets it again if it needs the module
            sys.stderr.write(f"warm spare: preload of {name} failed: {exc!r}\n")
            sys.stderr.flush()


def become(order: Mapping[str, Any], fds: Sequence[int], script: str) -> None:
    """Turn this process into the job process `order` describes; does not return until that
    process's program ends (`SystemExit` carries its exit code)."""
    sys.stdout.flush()
    sys.stderr.flush()
    log = fds[0]
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    env = dict(order["env"])
    if order.get("termination_fd") and len(fds) > 1:
        # the record's file lies in the job's read-only folder inside the sandbox: it is written
        # through the descriptor the runner opened (`/proc/self/fd/N` reopens that very file)
        os.set_inheritable(fds[1], False)
        env[TERMINATION_ENV] = f"/proc/self/fd/{fds[1]}"
    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None  # found again from the job's TMPDIR on first use
    os.chdir(order["cwd"])
    limit = order.get("memory_limit")
    if limit is not None:
        resource.setrlimit(resource.RLIMIT_DATA, (int(limit), int(limit)))
    sys.path.insert(0, os.path.dirname(script))  # as `tekscore ARGS` has it: its script's folder
    sys.argv = [script, *order["args"]]
    runpy.run_path(script, run_name="__main__")


def _options(argv: Sequence[str]) -> tuple[int, str, list[str]]:
    values = dict(zip(argv[0::2], argv[1::2], strict=False))
    preloads = [n for n in values.get("--preload", "").split(",") if n]
    return int(values["--fd"]), values["--script"], preloads


def main(argv: Sequence[str]) -> int:
    fd, script, names = _options(argv)
    channel = socket.socket(fileno=fd)
    channel.setblocking(True)
    preload(names)
    try:
        channel.send(READY)
        data, fds, _, _ = socket.recv_fds(channel, MAX_MESSAGE, 4)
    except OSError:
        return 0
    if not data:  # the runner's end closed: the server stopped before it needed us
        return 0
    channel.close()
    become(json.loads(data), fds, script)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
