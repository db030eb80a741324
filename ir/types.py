"""Shared field types of the IR: names, parameter references, secret references, record schemas.

Pure data, no I/O.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from common.fields import FieldType
from common.names import Name

__all__ = [
    "FieldSpec",
    "FieldType",
    "IRModel",
    "Name",
    "ParamNonNegativeInt",
    "ParamPositiveFloat",
    "ParamPositiveInt",
    "Resources",
    "Schema",
    "SecretKeyRef",
    "SecretRef",
]

PARAM_NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
PARAM_REF_RE = re.compile(r"^\$\{(" + PARAM_NAME + r")\}$")
"""A whole-string parameter reference, `${name}`: the field takes the parameter's typed value."""


class IRModel(BaseModel):
    """Base of every IR shape: camelCase in text, snake_case in Python, unknown fields refused."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )


def _param_or(tp: Any, json_type: dict[str, Any]) -> Any:
    """A field that holds `tp`, or a whole-string `${param}` resolved during pre-processing."""
    adapter: TypeAdapter[Any] = TypeAdapter(tp)

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if isinstance(value, str) and PARAM_REF_RE.match(value):
            return value
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise PydanticCustomError(first["type"], first["msg"]) from None

    schema = {"anyOf": [json_type, {"type": "string", "pattern": PARAM_REF_RE.pattern}]}
    return Annotated[Any, WrapValidator(validate), WithJsonSchema(schema)]


ParamPositiveInt = _param_or(
    Annotated[int, Field(ge=1, strict=True)], {"type": "integer", "minimum": 1}
)
ParamPositiveFloat = _param_or(
    Annotated[float, Field(gt=0)], {"type": "number", "exclusiveMinimum": 0}
)
ParamNonNegativeInt = _param_or(
    Annotated[int, Field(ge=0, strict=True)], {"type": "integer", "minimum": 0}
)


class SecretKeyRef(IRModel):
    """A key of a Kubernetes Secret (or, locally, of the environment: see docs/ir.md)."""

    name: Name = Field(description="The Secret's name.")
    key: str = Field(
        pattern=r"^[-._a-zA-Z0-9]+$", max_length=253, description="The key inside the Secret."
    )


class SecretRef(IRModel):
    """The only way an IR names a credential: `{secretRef: {name, key}}`, never its value."""

    secret_ref: SecretKeyRef


class FieldSpec(IRModel):
    """One field of a record schema (Avro primitive types)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    type: FieldType
    nullable: bool = Field(
        default=False, description="Whether null (or a missing field) is allowed."
    )
    doc: str | None = None


Schema = Annotated[list[FieldSpec], Field(description="An ordered list of fields.")]


class Resources(IRModel):
    """Kubernetes-style compute resources (`requests`/`limits` of cpu and memory)."""

    requests: dict[Literal["cpu", "memory"], str | int | float] = Field(default_factory=dict)
    limits: dict[Literal["cpu", "memory"], str | int | float] = Field(default_factory=dict)
