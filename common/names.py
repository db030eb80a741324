"""Names that must be DNS-1123 labels (Kubernetes object names, release names, model names).

Pure data, no I/O.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
"""Lower-case letters, digits and '-', at most 63, alphanumeric at both ends."""

DNS1123_LABEL_RE = re.compile(DNS1123_LABEL)

Name = Annotated[str, StringConstraints(pattern=DNS1123_LABEL, max_length=63)]
"""A DNS-1123 label: lower-case letters, digits and '-', at most 63, alphanumeric at both ends."""


def is_dns1123_label(text: str) -> bool:
    """Whether `text` is a DNS-1123 label."""
    return DNS1123_LABEL_RE.match(text) is not None
