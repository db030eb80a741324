"""The field types of record schemas (Avro primitive types), shared by the IR, the scoring flow
and the scoring service.

Pure data, no I/O.
"""

from __future__ import annotations

from typing import Literal

FieldType = Literal["boolean", "int", "long", "float", "double", "string", "bytes"]
"""The type of one field of a record schema."""
