"""Pre-processing step 4: merge every document into one values tree.

Pure, no I/O. Each definition becomes a fragment (`{"scoringFlows": {name: spec}}`, ...) merged
with deepmerge (lists replaced, dicts merged); a name defined twice with different content is an
error naming both places, the same content twice is harmless. `ir.assemble` then turns the tree
into the values shape.
"""

from __future__ import annotations

from typing import Any

from deepmerge import Merger

from ir.collect import Collected, Entry
from ir.errors import Issue
from ir.lookup import ResolvedFlow, dump

_MERGER = Merger(
    [(list, ["override"]), (dict, ["merge"]), (set, ["union"])], ["override"], ["override"]
)

SECTIONS = {
    "Model": "models",
    "ScoringService": "scoringServices",
    "DataChannel": "dataChannels",
    "ScoringFlow": "scoringFlows",
}


def merge_definitions(
    collected: Collected, flows: list[ResolvedFlow]
) -> tuple[dict[str, Any], list[Issue]]:
    """One tree `{section: {name: spec}}` of every definition; conflicts as issues."""
    resolved = {f.entry.name: f.data for f in flows}
    tree: dict[str, Any] = {}
    seen: dict[tuple[str, str], Entry] = {}
    issues: list[Issue] = []
    for kind, section in SECTIONS.items():
        for entry in collected.defined.get(kind, []):
            first = seen.get((kind, entry.name))
            if first is not None:
                if dump(first.spec) != dump(entry.spec):
                    issues.append(
                        entry.where.issue(
                            (),
                            f"{kind} {entry.name!r} is defined twice with different content "
                            f"(first at {first.where}, again at {entry.where})",
                        )
                    )
                continue
            seen[(kind, entry.name)] = entry
            body = resolved.get(entry.name) if kind == "ScoringFlow" else None
            fragment = {section: {entry.name: body if body is not None else dump(entry.spec)}}
            _MERGER.merge(tree, fragment)
    return tree, issues
