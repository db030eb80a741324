"""Pre-processing step 5: apply the server's global parameters, last.

Pure (`apply_globals`); `load_globals` reads the server's globals file. Globals are settings of
the scheduling server (image registry and tag, log and trace settings, callback URL, namespace,
git server); the `global` section of the values is replaced by them whole, so nothing a job
sends can override them. `check_git_sources` holds models from git to the git server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ir.collect import Entry
from ir.errors import IRValidationError, Issue
from ir.loader import clean_loc, parse_text
from ir.runtimes import BUILTIN_RUNTIMES
from ir.values import GlobalValues


def apply_globals(values: Mapping[str, Any], globals_: GlobalValues) -> dict[str, Any]:
    """`values` with its `global` section set from the server's globals."""
    out = dict(values)
    out["global"] = globals_.model_dump(by_alias=True, exclude_none=True, mode="json")
    return out


def local_globals() -> GlobalValues:
    """The globals of one machine without a globals file: the defaults, with every built-in
    runtime enabled (one `tekscore serve-model` serves them all when their extras are
    installed). A globals file that names no runtimes means the python runtime only: what a
    platform without other scoring servers deploys."""
    return GlobalValues(runtimes=dict(BUILTIN_RUNTIMES))


def check_git_sources(models: Iterable[Entry], globals_: GlobalValues) -> list[Issue]:
    """A model from git (`git+<remote>`) needs the server's `gitServer`, and its remote must be
    under it: user code loads only from the sources the server allows (docs/security.md)."""
    issues: list[Issue] = []
    server = globals_.git_server
    for entry in models:
        uri = str(getattr(entry.spec, "uri", ""))
        if not uri.startswith("git+"):
            continue
        if not server:
            issues.append(
                entry.where.issue(
                    ("uri",),
                    "a model from git needs the server's git server (the gitServer global); "
                    "this server has none",
                )
            )
        elif not uri[len("git+") :].startswith(server.rstrip("/") + "/"):
            issues.append(
                entry.where.issue(("uri",), f"{uri} is not under the server's git server {server}")
            )
    return issues


def load_globals(path: Path | None) -> GlobalValues:
    """The server's globals file (YAML or JSON, the `global` section's shape);
    `local_globals()` if None."""
    if path is None:
        return local_globals()
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise IRValidationError([Issue(name, None, (), f"cannot read: {exc}")]) from exc
    docs, issues = parse_text(text, file=name)
    if issues:
        raise IRValidationError(issues)
    data, positions = docs[0] if docs else ({}, None)
    try:
        return GlobalValues.model_validate(data or {})
    except ValidationError as exc:
        raise IRValidationError(
            Issue(name, positions.line_of(loc) if positions else None, loc, str(e["msg"]))
            for e in exc.errors()
            for loc in [clean_loc(data, e["loc"])]
        ) from exc
