"""Scoring flows as written in the IR: source -> steps -> sink, with their tuning knobs.

Pure data, no I/O. Numeric knobs may be a whole-string `${param}`, resolved by pre-processing;
the resolved form is `ir.values.FlowValues`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ir.types import (
    IRModel,
    Name,
    ParamNonNegativeInt,
    ParamPositiveFloat,
    ParamPositiveInt,
    ParamRatio,
)

Scalar = str | int | float | bool | None


class _Step(IRModel):
    name: str | None = Field(default=None, description="A label for logs and dead-letter reasons.")


class ScoreStep(_Step):
    """Score the records with a model of a scoring service.

    `inputs` maps model input field -> record field (default: same name); `outputs` maps model
    output field -> record field. With `merge` (default) results are added to the record,
    otherwise they replace it.
    """

    type: Literal["score"]
    model: Name
    service: Name | None = Field(
        default=None, description="The service serving `model`; needed only when several do."
    )
    inputs: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)
    merge: bool = True


class MapStep(_Step):
    """Reshape records: keep `select`ed fields, `drop` fields, `rename` old -> new, `set`
    constants."""

    type: Literal["map"]
    select: list[str] | None = None
    drop: list[str] = Field(default_factory=list)
    rename: dict[str, str] = Field(default_factory=dict)
    set: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _does_something(self) -> MapStep:
        if self.select is None and not (self.drop or self.rename or self.set):
            raise ValueError("a map step needs at least one of select, drop, rename, set")
        return self


Operator = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "notIn", "exists", "notExists"]


class Condition(IRModel):
    """A declarative comparison of one record field with a constant (no expressions, no eval)."""

    field: str = Field(min_length=1)
    op: Operator
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        if self.op in ("in", "notIn") and not isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a list value")
        if self.op in ("exists", "notExists") and self.value is not None:
            raise ValueError(f"op {self.op!r} takes no value")
        return self


class FilterStep(_Step):
    """Keep records matching `all` (or `any`) of the conditions; others count as filtered."""

    type: Literal["filter"]
    where: list[Condition] = Field(min_length=1)
    match: Literal["all", "any"] = "all"


class PythonStep(_Step):
    """Call `function(records) -> records` from a user module (file://, http(s)://, s3://)."""

    type: Literal["python"]
    uri: str = Field(min_length=1)
    function: str = Field(default="transform", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


Step = Annotated[ScoreStep | MapStep | FilterStep | PythonStep, Field(discriminator="type")]


class FlowSpec(IRModel):
    """The spec of a ScoringFlow document (or an inline pipeline entry, with `name`)."""

    name: Name | None = Field(default=None, description="Only in inline pipeline entries.")
    mode: Literal["batch", "streaming"] = "batch"
    source: Name
    sink: Name
    dead_letter: Name | None = None
    steps: list[Step] = Field(default_factory=list)
    batch_size: ParamPositiveInt = 1024
    concurrency: ParamPositiveInt = 2
    replicas: ParamPositiveInt = 1
    shards: ParamPositiveInt = 1
    request_timeout_seconds: ParamPositiveFloat = 30.0
    max_retries: ParamNonNegativeInt = 3
    max_failed_records: ParamNonNegativeInt | None = Field(
        default=None,
        description="Batch flows: more failed records than this fail the flow "
        "(TooManyFailedRecords). Unset (with maxFailedRatio unset): only a flow whose every "
        "record failed fails (AllRecordsFailed).",
    )
    max_failed_ratio: ParamRatio | None = Field(
        default=None,
        description="Batch flows: a larger share of failed records (0..1) fails the flow.",
    )

    @model_validator(mode="after")
    def _policy_for_batch_flows(self) -> FlowSpec:
        if self.mode == "streaming" and (
            self.max_failed_records is not None or self.max_failed_ratio is not None
        ):
            raise ValueError(
                "maxFailedRecords and maxFailedRatio are for batch flows (a streaming flow has "
                "no end to judge)"
            )
        return self
