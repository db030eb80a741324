"""The program of a warm spare: a Python that imports a runtime family's libraries ahead of need,
then waits to become exactly one job process (docs/local-backend.md, "Warm spares").

Run by the local runner (`local_runner.warm`), never imported by the server::

    python -P -m local_runner.spare --fd N --script /venv/bin/tekscore --preload a,b,c \
        [--warm-up sklearn]

It imports the `--preload` modules and runs the `--warm-up`s (`sklearn`: a tiny pipeline of
its own fitted and scored once, so the first-call costs of scikit-learn's input checks,
~0.05-0.3 s, are paid before a job's first prediction; no job's model or data is involved). It
then says `ready` on the hand-over socket (file descriptor N, a `SOCK_SEQPACKET` socket the
runner keeps the other end of) and waits for one hand-over message: the job process's
command-line arguments, its whole environment, its working folder, its memory limit, and as file
descriptors its log (made its stdout and stderr) and, in the sandbox, its termination record.
What is loaded by then is frozen out of the garbage collector's sight (`gc.freeze`: it lives as
long as the process; the job's collections and the interpreter's exit, which would walk
scikit-learn's and scipy's objects, skip it). Then it becomes that process: the environment
replaced by the message's (nothing of the spare's start is kept), the limit applied, and the
`tekscore` script run as `__main__` with those arguments, as `tekscore ARGS` would run. When the
runner's end closes before a hand-over (the server stopped), it exits.

Does I/O: the socket, the file descriptors it is given, `chdir`, `setrlimit`. Imports nothing of
ours but the modules it is told to preload (by name).
"""

from __future__ import annotations

import gc
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


def warm_up_sklearn() -> None:
    """Score once with a tiny pipeline of our own: scikit-learn's first `predict` in a process
    discovers dataframe plugins (every installed distribution's entry points) to check its input;
    that result is kept for the process's life."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0]])
    make_pipeline(StandardScaler(), LogisticRegression()).fit(x, [0, 1, 0, 1]).predict(x)


WARM_UPS = {"sklearn": warm_up_sklearn}


def warm_up(names: Sequence[str]) -> None:
    """Run the named warm-ups; one that fails is only reported (the job works without it)."""
    for name in names:
        try:
            WARM_UPS[name]()
        except Exception as exc:  # a missing library: the job process meets it if it needs it
            sys.stderr.write(f"warm spare: warm-up {name} failed: {exc!r}\n")
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


def _options(argv: Sequence[str]) -> tuple[int, str, list[str], list[str]]:
    values = dict(zip(argv[0::2], argv[1::2], strict=False))
    preloads = [n for n in values.get("--preload", "").split(",") if n]
    warm_ups = [n for n in values.get("--warm-up", "").split(",") if n]
    return int(values["--fd"]), values["--script"], preloads, warm_ups


def main(argv: Sequence[str]) -> int:
    fd, script, names, warm_ups = _options(argv)
    channel = socket.socket(fileno=fd)
    channel.setblocking(True)
    preload(names)
    warm_up(warm_ups)
    # what is loaded now lives as long as the process: out of the collector's sight, so the job
    # process's collections do not walk it again and again, nor its exit (seconds under load)
    gc.collect()
    gc.freeze()
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
