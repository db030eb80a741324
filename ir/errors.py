"""Errors of the IR package: every problem found in IR text, with where it is.

Pure data, no I/O. The tree::

    IRError                      base of everything raised by `ir`
    └── IRValidationError        one or more `Issue`s (file, line, path, message), all at once

Callers print `IRValidationError.issues` one per line (`FILE:LINE: PATH: MESSAGE`) or send
them as the API's 422 body (`Issue.as_dict`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Loc = tuple[str | int, ...]


def format_loc(loc: Loc) -> str:
    """Render a path inside a document as `spec.scoringFlows[0].steps[1].model`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<document>"


@dataclass(frozen=True, order=True)
class Issue:
    """One problem in the IR: file, 1-based line, path inside the document, message."""

    file: str
    line: int | None
    loc: Loc = field(default=())
    msg: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {format_loc(self.loc)}: {self.msg}"

    def as_dict(self) -> dict[str, Any]:
        """The API's error item: `{"loc", "msg", "file", "line"}`."""
        out: dict[str, Any] = {"loc": list(self.loc), "msg": self.msg, "file": self.file}
        if self.line is not None:
            out["line"] = self.line
        return out


class IRError(Exception):
    """Base of every error raised by the `ir` package."""


class IRValidationError(IRError):
    """The IR has one or more problems; `issues` lists every one of them, sorted by place."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues: Sequence[Issue] = sorted(set(issues), key=_sort_key)
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} in the IR"
        super().__init__("\n".join([head + ":", *(str(i) for i in self.issues)]))


def _sort_key(issue: Issue) -> tuple[str, int, str, str]:
    return (issue.file, issue.line or 0, format_loc(issue.loc), issue.msg)
