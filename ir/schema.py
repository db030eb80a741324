"""JSON Schema export of the IR (for editors and the modelops server) and of the values file.

Pure, no I/O.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from ir.documents import KINDS, Document
from ir.values import values_json_schema

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def ir_json_schema(kind: str | None = None) -> dict[str, Any]:
    """The JSON Schema of one IR document (any kind, or the given `kind`)."""
    if kind is None:
        schema = TypeAdapter(Document).json_schema(by_alias=True)
        schema["title"] = "tekscore IR document"
    else:
        if kind not in KINDS:
            raise KeyError(kind)
        schema = KINDS[kind].model_json_schema(by_alias=True)
    schema["$schema"] = DRAFT
    return schema


__all__ = ["KINDS", "ir_json_schema", "values_json_schema"]
