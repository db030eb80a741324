"""Bounds on what one piece of IR may cost to load: alias expansion, nesting, document count.

Pure, no I/O. YAML aliases let a few hundred bytes stand for billions of nodes (the "billion
laughs": 9 levels of 9 aliases); every later step (line positions, construction, validation,
serialisation) walks the expanded tree, so the expansion is measured on the composed node graph
first — each node once, memoised, in time proportional to what was written — and a document is
refused when aliases add more than `MAX_ALIAS_NODES` nodes to it, when it nests deeper than
`MAX_DEPTH` levels, when an alias sits inside its own anchor (a recursive structure), or when a
mapping key is not a plain value (`? [a, b] : c`). docs/security.md has the reasons.

`Limit` is a bound a server configures (documents per request, flows per job...) with the name
of the setting that changes it, so that a refusal can say both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

MAX_ALIAS_NODES = 100_000
"""Nodes that aliases may add to one document beyond the nodes written in it."""

MAX_DEPTH = 64
"""Levels of nested mappings and lists in one IR document (its top mapping is level 1)."""


@dataclass(frozen=True)
class Limit:
    """A configured bound and the setting that changes it."""

    value: int
    setting: str

    def message(self, what: str, count: int | None = None) -> str:
        """The sentence of a refusal: what (and how many, when known), the bound and the
        setting that changes it."""
        many = f"{count}, " if count is not None else ""
        return f"{what}: {many}more than the limit of {self.value} (setting {self.setting})"


@dataclass(frozen=True)
class NodeProblem:
    """Why a composed YAML document is refused, and the 1-based line it points at."""

    line: int
    msg: str


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_node(root: yaml.Node) -> NodeProblem | None:
    """The first reason to refuse a composed document before walking its expanded tree, or
    None. Iterative (no recursion limit) and linear in the nodes written."""
    sizes: dict[int, int] = {}  # expanded node count of each finished node, by id
    depths: dict[int, int] = {}  # levels of mappings and lists, the node's own included
    inner: dict[int, yaml.Node] = {}  # the innermost mapping or list on its deepest path
    open_: set[int] = set()  # nodes whose subtree is being walked (a cycle returns to one)
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = _children(node)
        if finished:
            open_.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            deepest = max(children, key=lambda c: depths[id(c)], default=None)
            container = not isinstance(node, yaml.ScalarNode)
            depths[key] = container + (depths[id(deepest)] if deepest is not None else 0)
            inner[key] = inner[id(deepest)] if deepest is not None and depths[id(deepest)] else node
            if depths[key] > MAX_DEPTH:
                return NodeProblem(
                    _line(inner[key]), f"nested more than {MAX_DEPTH} levels deep: refused"
                )
            continue
        if key in sizes:
            continue
        if isinstance(node, yaml.MappingNode):
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    return NodeProblem(
                        _line(key_node),
                        "a mapping key must be a plain value, not a list or a mapping",
                    )
        open_.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                return NodeProblem(
                    _line(child), "a YAML alias inside its own anchor (a recursive structure)"
                )
            if id(child) not in sizes:
                stack.append((child, False))
    added = sizes[id(root)] - len(sizes)
    if added > MAX_ALIAS_NODES:
        return NodeProblem(
            _line(root),
            f"YAML aliases expand this document by {added} nodes, more than the "
            f"{MAX_ALIAS_NODES} allowed: refused",
        )
    return None


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def too_deep(value: Any, limit: int) -> bool:
    """Whether a JSON-like value nests dicts and lists deeper than `limit` levels (the value
    itself is level 1). Level by level, containers only: thousands of levels are answered (no
    RecursionError), in about the time `json.loads` took to build the value."""
    level: list[Any] = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            below += [c for c in children if isinstance(c, dict | list)]
        level = below
    return False
