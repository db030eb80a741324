"""Message keys of Kafka sinks: `key` is a field name (`customer_id`) or a template of fields
(`{region}/{customer_id}`, `{{` and `}}` for literal braces).

Pure logic, no I/O. `KeyTemplate.parse` checks the text (a `ValueError` says what is wrong, for
the IR's error lines); `render(record)` gives the key's text and `missing(record)` the fields a
record lacks (absent or null), so a flow can dead-letter such a record instead of producing it
without a key. Values render as text: strings as they are, booleans `true`/`false`, numbers as
JSON writes them, lists and objects as compact JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KeyTemplate:
    """A parsed key: literal text and field names, in order (`fields` lists the names once)."""

    text: str
    parts: tuple[tuple[bool, str], ...]  # (is_field, literal text or field name)

    @property
    def fields(self) -> tuple[str, ...]:
        """The field names the key is made of, each once, in order of appearance."""
        return tuple(dict.fromkeys(name for is_field, name in self.parts if is_field))

    @classmethod
    def parse(cls, text: str) -> KeyTemplate:
        """A field name, or a template with `{field}` placeholders; ValueError when malformed."""
        if not text:
            raise ValueError("a message key needs a field name or a template such as '{id}'")
        if "{" not in text and "}" not in text:
            return cls(text, ((True, text),))
        parts: list[tuple[bool, str]] = []
        literal = ""
        i = 0
        while i < len(text):
            char = text[i]
            if text.startswith("{{", i) or text.startswith("}}", i):
                literal += char
                i += 2
                continue
            if char == "}":
                raise ValueError(f"key template {text!r}: '}}' without '{{' (write '}}}}')")
            if char != "{":
                literal += char
                i += 1
                continue
            end = text.find("}", i + 1)
            name = text[i + 1 : end] if end >= 0 else ""
            if end < 0 or not name or "{" in name:
                raise ValueError(
                    f"key template {text!r}: expected a field name between '{{' and '}}'"
                )
            if literal:
                parts.append((False, literal))
                literal = ""
            parts.append((True, name))
            i = end + 1
        if literal:
            parts.append((False, literal))
        if not any(is_field for is_field, _ in parts):
            raise ValueError(f"key template {text!r} names no field")
        return cls(text, tuple(parts))

    def missing(self, record: dict[str, Any]) -> list[str]:
        """The key's fields that `record` lacks or holds null in."""
        return [name for name in self.fields if record.get(name) is None]

    def render(self, record: dict[str, Any]) -> str:
        """The key of `record` (which has every field: see `missing`)."""
        return "".join(
            _text(record[value]) if is_field else value for is_field, value in self.parts
        )


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
