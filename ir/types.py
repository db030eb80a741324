"""Shared field types of the IR: names, parameter references, secret references, record schemas.

Pure data, no I/O.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from common.avro import SchemaError, parse_fields, simple_type
from common.fields import FieldType
from common.names import Name

__all__ = [
    "AvroType",
    "FieldSpec",
    "FieldType",
    "IRModel",
    "Name",
    "ParamNonNegativeInt",
    "ParamPositiveFloat",
    "ParamPositiveInt",
    "ParamRatio",
    "PrimitiveSchema",
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
ParamRatio = _param_or(
    Annotated[float, Field(ge=0, le=1)], {"type": "number", "minimum": 0, "maximum": 1}
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


AvroType = Annotated[
    FieldType | str | dict[str, Any] | list[Any],
    WithJsonSchema(
        {
            "anyOf": [
                {"enum": ["boolean", "int", "long", "float", "double", "string", "bytes"]},
                {"type": "string", "description": "A type defined by an earlier field."},
                {"type": "object", "description": "An Avro type in long form."},
                {"type": "array", "description": "An Avro union."},
            ]
        }
    ),
]
"""Any Avro type: a primitive name, its long form, a logical type, an enum, fixed, array, map,
union or nested record, or the name of a type an earlier field defined."""


class FieldSpec(IRModel):
    """One field of a record schema: a name and an Avro type (`common.avro`)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    type: AvroType
    nullable: bool = Field(
        default=False, description="Whether null (or a missing field) is allowed."
    )
    doc: str | None = None

    @field_validator("type", mode="after")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        """`{"type": "double"}` is written `double` (one form for each primitive)."""
        simple = simple_type(value)
        return simple if simple is not None else value


def _valid_avro(fields: list[FieldSpec]) -> list[FieldSpec]:
    try:
        parse_fields(fields)
    except SchemaError as exc:
        raise ValueError(str(exc)) from None
    return fields


def _primitive_only(fields: list[FieldSpec]) -> list[FieldSpec]:
    for f in fields:
        if simple_type(f.type) in (None, "null"):
            raise ValueError(
                f"field {f.name!r}: a model's schema takes the primitive types boolean, int, "
                "long, float, double, string, bytes (other Avro types are for channel schemas)"
            )
    return fields


Schema = Annotated[
    list[FieldSpec],
    AfterValidator(_valid_avro),
    Field(description="An ordered list of fields (an Avro record's fields)."),
]
"""A channel's schema: fields of any Avro type, checked with fastavro."""

PrimitiveSchema = Annotated[
    list[FieldSpec],
    AfterValidator(_primitive_only),
    Field(description="An ordered list of fields of primitive Avro types."),
]
"""A model's schema: the scoring service checks and orders primitive fields."""


class Resources(IRModel):
    """Kubernetes-style compute resources (`requests`/`limits` of cpu and memory)."""

    requests: dict[Literal["cpu", "memory"], str | int | float] = Field(default_factory=dict)
    limits: dict[Literal["cpu", "memory"], str | int | float] = Field(default_factory=dict)
