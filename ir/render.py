"""The canonical form of a values tree: sorted-key YAML, and its content hash.

Pure, no I/O. Same tree -> byte-identical text. `contentHash` is the sha256 of the canonical
JSON (sorted keys, no spaces) of the tree without `contentHash`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import yaml


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Block-style YAML that never emits anchors/aliases (every value written out)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def content_hash(values: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of `values` without its `contentHash` key."""
    body = {k: v for k, v in values.items() if k != "contentHash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def with_hash(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` carrying its `contentHash`."""
    return {**values, "contentHash": content_hash(values)}


def to_yaml(values: Mapping[str, Any]) -> str:
    """The values file text: sorted keys, block style, UTF-8, no line folding."""
    return yaml.dump(
        dict(values),
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
    )
