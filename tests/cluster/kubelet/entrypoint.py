#!/usr/bin/python3
"""A stand-in for Tekton's entrypoint binary (tektoncd/pipeline `cmd/entrypoint`), for the test
kubelet: the kubelet maps it to `/ko-app/entrypoint` of the image
`ghcr.io/tektoncd/pipeline/entrypoint`, the `prepare` init container copies it to
`/tekton/bin/entrypoint`, and every step container runs it. Python standard library only (it runs
inside any "image"); does I/O (files, the step's process).

Implemented, as in Tekton 3ee1745ae:

- subcommands `init SRC DST STEP...` (copy SRC to DST, then `step-init`), `cp SRC DST`,
  `decode-script FILE` (base64-decode in place, keeping the mode), `step-init STEP...` (the
  `/tekton/steps/<name>` and `/tekton/steps/<index>` symlinks to `/tekton/run/<i>/status`);
- the step wrapper: wait for each `-wait_file` (with `-wait_file_content`: non-empty), or bail
  out when `<file>.err` appears (a previous step failed: this step is skipped, exit 1, reason
  `Skipped`); run `-entrypoint` with the args after `--` in its own process group, forwarding
  signals to it; write `-post_file` (or `<post_file>.err` on failure) and `<step_metadata_dir>/
  exitCode`; write the termination message to `-termination_path`: the task results named by
  `-results` read from `/tekton/results/<name>` (type 1), then `StartedAt` (type 3, RFC 3339 with
  milliseconds); exit with the step's exit code (255 when it was killed by a signal, like Go's
  `os.Exit(-1)`); `-on_error continue` keeps going (exit 0, `ExitCode` in the message);
  `-timeout` kills the step and reports `TimeoutExceeded`.

Deliberate differences: wait files are polled every 0.1 s (Tekton: 1 s); no credentials
initialisation, breakpoints, step results, artifacts, SPIRE or when-expressions.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

POLL = 0.1
TEKTON_ROOT = "/tekton"
RESULTS_DIR = "/tekton/results"
INTERNAL, TASK_RESULT = 3, 1
BOOL_FLAGS = {
    "wait_file_content",
    "breakpoint_on_failure",
    "debug_before_step",
    "compress_termination_message",
}


def now_ms() -> str:
    """RFC 3339 with milliseconds, as Go's "2006-01-02T15:04:05.000Z07:00"."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def step_init(steps: list[str]) -> None:
    step_dir = os.path.join(TEKTON_ROOT, "steps")
    os.makedirs(step_dir, exist_ok=True)
    for i, name in enumerate(steps):
        run = os.path.join(TEKTON_ROOT, "run", str(i), "status")
        for link in (os.path.join(step_dir, name), os.path.join(step_dir, str(i))):
            with contextlib.suppress(FileExistsError):
                os.symlink(run, link)


def copy(src: str, dst: str) -> None:
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o755)


def decode_script(path: str) -> None:
    mode = os.stat(path).st_mode & 0o777
    with open(path, "rb") as f:
        data = base64.b64decode(b"".join(f.read().split()))
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def subcommand(args: list[str]) -> bool:
    """Run a subcommand when `args` names one; False when these are step args."""
    if not args:
        return False
    if args[0] == "init" and len(args) >= 3:
        copy(args[1], args[2])
        step_init(args[3:])
    elif args[0] == "cp" and len(args) == 3:
        copy(args[1], args[2])
    elif args[0] == "decode-script" and len(args) == 2:
        decode_script(args[1])
    elif args[0] == "step-init":
        step_init(args[1:])
    else:
        return False
    return True


def parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Go `flag` parsing: `-name value`, `-name=value`, bool flags alone; stops at `--`."""
    flags: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return flags, argv[i + 1 :]
        if not arg.startswith("-"):
            return flags, argv[i:]
        name = arg.lstrip("-")
        if "=" in name:
            name, value = name.split("=", 1)
        elif name in BOOL_FLAGS:
            value = "true"
        else:
            i += 1
            value = argv[i] if i < len(argv) else ""
        flags[name] = value
        i += 1
    return flags, []


def write(path: str, content: str = "") -> None:
    if not path:
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(content)


def termination(path: str, entries: list[dict[str, object]]) -> None:
    """Append to the JSON list in the termination file, as Tekton's termination.WriteMessage."""
    existing: list[dict[str, object]] = []
    with contextlib.suppress(OSError, ValueError):
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
        if text:
            existing = json.loads(text)
    write(path, json.dumps(existing + entries, separators=(",", ":")))


def wait_for(path: str, *, content: bool) -> bool:
    """True once `path` exists (non-empty when `content`); False when `path.err` appears."""
    if not path:
        return True
    while True:
        with contextlib.suppress(FileNotFoundError):
            if not content or os.path.getsize(path) > 0:
                return True
        if os.path.exists(path + ".err"):
            return False
        time.sleep(POLL)


def go_duration(text: str) -> float:
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    total, number = 0.0, ""
    i = 0
    while i < len(text):
        if text[i].isdigit() or text[i] == ".":
            number += text[i]
            i += 1
            continue
        for unit in sorted(units, key=len, reverse=True):
            if text.startswith(unit, i):
                total += float(number or 0) * units[unit]
                number = ""
                i += len(unit)
                break
        else:
            raise ValueError(f"bad duration {text!r}")
    return total + (float(number) if number else 0.0)


def run_step(flags: dict[str, str], args: list[str]) -> int:
    term = flags.get("termination_path", "/tekton/termination")
    post = flags.get("post_file", "")
    meta = flags.get("step_metadata_dir", "")
    if meta:
        os.makedirs(os.path.join(meta, "results"), exist_ok=True)
        os.makedirs(os.path.join(meta, "artifacts"), exist_ok=True)
    output: list[dict[str, object]] = []
    for wait_file in [f for f in flags.get("wait_file", "").split(",") if f]:
        if not wait_for(wait_file, content=flags.get("wait_file_content") == "true"):
            write(post + ".err" if post else "")
            output.append({"key": "StartedAt", "value": now_ms(), "type": INTERNAL})
            output.append({"key": "Reason", "value": "Skipped", "type": INTERNAL})
            termination(term, output)
            print("Skipping step because a previous step failed", file=sys.stderr)
            return 1
    output.append({"key": "StartedAt", "value": now_ms(), "type": INTERNAL})
    command = ([flags["entrypoint"]] if flags.get("entrypoint") else []) + args
    timeout = go_duration(flags["timeout"]) if flags.get("timeout") else 0.0
    code, timed_out = 0, False
    if command:
        child = subprocess.Popen(command, start_new_session=True)

        def forward(signum: int, _frame: object) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signum)

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, forward)
        try:
            status = child.wait(timeout=timeout or None)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            status = child.wait()
        code = status if status >= 0 else 255
    if timed_out:
        write(post + ".err" if post else "")
        output.append({"key": "Reason", "value": "TimeoutExceeded", "type": INTERNAL})
        code = 1
    elif code != 0 and flags.get("on_error") == "continue":
        output.append({"key": "ExitCode", "value": str(code), "type": INTERNAL})
        write(post)
        if meta:
            write(os.path.join(meta, "exitCode"), str(code))
        code = 0
    elif code == 0:
        write(post)
        if meta:
            write(os.path.join(meta, "exitCode"), "0")
    else:
        write(post + ".err" if post else "")
    results = []
    for name in flags.get("results", "").split(","):
        path = os.path.join(RESULTS_DIR, name)
        if name and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                results.append({"key": name, "value": f.read(), "type": TASK_RESULT})
    if results:
        termination(term, results)
    termination(term, output)
    return code


def main(argv: list[str]) -> int:
    flags, rest = parse(argv)
    if not flags and subcommand(rest):
        return 0
    return run_step(flags, rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
