"""Indexing loaded documents: the pipeline, and every model, service, channel and flow defined
standalone or inline, with where each was written and whether it belongs to the pipeline.

Pure, no I/O. Membership rule: a pipeline list (`models`, `scoringServices`, `dataChannels`,
`scoringFlows`) names its members, inline or by reference; an omitted list makes every standalone
document of that kind a member. Relative model `file://` URIs are made absolute here, against the
folder of the document that wrote them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ir.errors import Issue, Loc
from ir.loader import SourceDoc

# pipeline list field -> document kind
LISTS = {
    "models": "Model",
    "scoringServices": "ScoringService",
    "dataChannels": "DataChannel",
    "scoringFlows": "ScoringFlow",
}


@dataclass(frozen=True)
class Where:
    """A place in the IR: a document and the path of a value inside it."""

    src: SourceDoc
    loc: Loc

    def issue(self, sub: Loc, msg: str) -> Issue:
        """An issue at `sub` below this place."""
        return self.src.issue((*self.loc, *sub), msg)

    def __str__(self) -> str:
        line = self.src.positions.line_of(self.loc)
        return f"{self.src.file}:{line}" if line is not None else self.src.file


@dataclass(frozen=True)
class Entry:
    """One named definition (a model, service, channel or flow) and where it was written."""

    kind: str
    name: str
    spec: Any
    where: Where


@dataclass
class Collected:
    """Everything defined in the IR, by kind, and which definitions the pipeline takes."""

    pipeline: Entry
    defined: dict[str, list[Entry]] = field(default_factory=dict)
    members: dict[str, list[Entry]] = field(default_factory=dict)

    def first(self, kind: str, name: str) -> Entry | None:
        """The first definition of `name` (later ones are checked for conflicts by merge)."""
        return next((e for e in self.defined.get(kind, []) if e.name == name), None)


def resolve_path(raw: str, base_dir: Path) -> str:
    """A local path made absolute against `base_dir`."""
    path = Path(raw)
    return str(path if path.is_absolute() else (base_dir / path).resolve())


def resolve_uri(uri: str, base_dir: Path) -> str:
    """`file://relative` (or a plain path) made `file:///absolute`; other schemes unchanged."""
    if uri.startswith("file://"):
        return "file://" + resolve_path(uri[len("file://") :], base_dir)
    if "://" not in uri:  # a plain path, as a python step may give: the same as file://
        return "file://" + resolve_path(uri, base_dir)
    return uri


def absolute(kind: str, spec: Any, base_dir: Path) -> Any:
    """`spec` with its relative URIs made absolute against `base_dir`.

    Models only: flows and channels may hold `${params}`, so their paths are resolved after
    parameters, by `ir.lookup.resolve_paths`.
    """
    if kind == "Model":
        return spec.model_copy(update={"uri": resolve_uri(spec.uri, base_dir)})
    return spec


def collect(docs: Sequence[SourceDoc]) -> tuple[Collected | None, list[Issue]]:
    """Index the documents; issues for a missing or second pipeline and for bad references."""
    issues: list[Issue] = []
    pipelines = [d for d in docs if d.kind == "ScoringPipeline"]
    if not pipelines:
        files = sorted({d.file for d in docs}) or ["<ir>"]
        issues.append(Issue(files[0], None, ("kind",), "the IR has no ScoringPipeline document"))
        return None, issues
    for extra in pipelines[1:]:
        issues.append(
            extra.issue(
                ("kind",),
                f"a second ScoringPipeline; the IR already has {pipelines[0].name!r} "
                f"({pipelines[0].file}:{pipelines[0].positions.line_of(())})",
            )
        )
    head = pipelines[0]
    result = Collected(pipeline=Entry("ScoringPipeline", head.name, head.doc.spec, Where(head, ())))
    for kind in LISTS.values():
        result.defined[kind] = [
            Entry(kind, d.name, absolute(kind, d.doc.spec, d.base_dir), Where(d, ("spec",)))
            for d in docs
            if d.kind == kind
        ]
    for list_name, kind in LISTS.items():
        listed = getattr(head.doc.spec, _snake(list_name))
        if listed is None:
            result.members[kind] = list(result.defined[kind])
            continue
        members: list[Entry] = []
        for i, item in enumerate(listed):
            loc = ("spec", list_name, i)
            if isinstance(item, str):
                found = result.first(kind, item)
                if found is None:
                    known = sorted({e.name for e in result.defined[kind]})
                    issues.append(
                        head.issue(loc, f"unknown {kind} {item!r}; known: {_names(known)}")
                    )
                else:
                    members.append(found)
                continue
            if item.name is None:
                issues.append(head.issue(loc, "an inline entry needs a name"))
                continue
            spec = absolute(kind, item.model_copy(update={"name": None}), head.base_dir)
            entry = Entry(kind, item.name, spec, Where(head, loc))
            result.defined[kind].append(entry)
            members.append(entry)
        result.members[kind] = members
    return result, issues


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "(none)"
