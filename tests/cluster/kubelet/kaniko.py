#!/usr/bin/python3
"""A stand-in for kaniko's executor (`/kaniko/executor` of `gcr.io/kaniko-project/executor`),
for the test kubelet: no image is built here (no container engine, no registry). It records
what it would build instead: one line on stdout (the step's log) naming the destination, the
Dockerfile, the context and the build arguments, and the `--digest-file` it is given gets
`sha256:` of those facts, so a test can tell each build apart. Python standard library only;
does I/O (the digest file, stdout). Unknown flags fail like kaniko does (exit 1).
"""

from __future__ import annotations

import hashlib
import json
import sys


def main(argv: list[str]) -> int:
    facts: dict[str, object] = {"buildArgs": []}
    digest_file = None
    for arg in argv:
        name, _, value = arg.partition("=")
        if name == "--build-arg":
            facts["buildArgs"].append(value)  # type: ignore[attr-defined]
        elif name in ("--dockerfile", "--context", "--destination"):
            facts[name.removeprefix("--")] = value
        elif name == "--digest-file":
            digest_file = value
        else:
            print(f"kaniko stand-in: unknown flag {arg!r}", file=sys.stderr)
            return 1
    if "destination" not in facts or "dockerfile" not in facts:
        print("kaniko stand-in: --destination and --dockerfile are required", file=sys.stderr)
        return 1
    text = json.dumps(facts, sort_keys=True)
    print(f"would build {text}", flush=True)
    if digest_file:
        with open(digest_file, "w", encoding="utf-8") as f:
            f.write("sha256:" + hashlib.sha256(text.encode()).hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
