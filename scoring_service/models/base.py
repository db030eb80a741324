"""The interface every loaded model offers: records scoring, OIP tensor inference, metadata.

No I/O. Records scoring checks each record against the model's input schema (when declared),
scores the valid ones in one call (`_score_batch`) and puts `{"$error": ...}` items in place of
the invalid ones. When a batch call raises, each row is retried alone so that only the rows
that fail get an error item. Tensor inference defaults to: tensors -> records -> results ->
one output tensor per output field.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from functools import cached_property
from types import ModuleType
from typing import Any

import numpy as np

from scoring_service.batching import Answer, Coalescer
from scoring_service.config import FieldSpec, ModelConfig
from scoring_service.errors import InvalidInputError, ModelLoadError
from scoring_service.protocol import (
    Datatype,
    MetadataModel,
    MetadataTensor,
    RequestInput,
    ResponseOutput,
)
from scoring_service.records import (
    Checker,
    Record,
    Result,
    check_all,
    dump_results,
    error_item,
    is_error,
    make_checker,
    merge_results,
)
from scoring_service.tensors import FIELD_DATATYPES, column_array, decode_input, encode_output


def failure(exc: BaseException) -> str:
    """The reason given for a record whose scoring raised."""
    return f"scoring failed: {type(exc).__name__}: {exc}"


def import_extra(model: str, module: str, extra: str) -> ModuleType:
    """Import the library a runtime needs, or fail the model's load naming the extra to
    install (`pip install 'tekscore[<extra>]'`)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelLoadError(
            model,
            f"{module} is not installed: this model type needs the '{extra}' extra "
            f"(pip install 'tekscore[{extra}]')",
        ) from exc


def as_record(value: Any, default_field: str) -> Record:
    """A model's output as a result record: objects as they are, other values wrapped."""
    if isinstance(value, dict):
        return value
    return {default_field: value}


class LoadedModel(ABC):
    """A model ready to score. Subclasses set `platform`, `inline` and implement scoring."""

    platform: str = "unknown"
    inline: bool = True
    """Score on the event loop (fast numeric code) instead of in a worker thread."""
    coalesce: bool = False
    """Concurrent records requests may be scored with one call (`scoring_service.batching`):
    only for inline models whose result for a row does not depend on the other rows."""

    def __init__(self, config: ModelConfig, input_fields: list[FieldSpec] | None = None) -> None:
        self.config = config
        self.name = config.name
        schema = config.schema_
        self.input_fields = (
            input_fields
            if input_fields is not None
            else (schema.input if schema and schema.input else None)
        )
        self.output_fields = schema.output if schema and schema.output else None
        self.checker: Checker | None = (
            make_checker(self.input_fields) if self.input_fields else None
        )
        self.default_output = (
            self.output_fields[0].name
            if self.output_fields and len(self.output_fields) == 1
            else "output"
        )

    # -- records ---------------------------------------------------------------------------

    def score_records(self, records: list[Record]) -> list[Result]:
        """One result item per record, in order (see module docstring)."""
        rows, index, bad = check_all(records, self.checker)
        results = self._score_rows(rows) if rows else []
        return merge_results(len(records), index=index, results=results, bad=bad)

    def score_records_json(self, records: list[Record]) -> tuple[bytes, int]:
        """The encoded answer body and how many of its items are errors. Models with a
        vectorised answer override it to encode columns without building result records."""
        results = self.score_records(records)
        return dump_results(results), sum(1 for r in results if is_error(r))

    def score_records_json_many(self, jobs: list[list[Record]]) -> list[Answer | BaseException]:
        """`score_records_json` of several requests; a request's exception is its answer.
        Models with `coalesce` override it to score all the requests with one call."""
        answers: list[Answer | BaseException] = []
        for records in jobs:
            try:
                answers.append(self.score_records_json(records))
            except Exception as exc:
                answers.append(exc)
        return answers

    @cached_property
    def coalescer(self) -> Coalescer:
        """Puts together the concurrent records requests of this model (see `coalesce`)."""
        return Coalescer(self.score_records_json_many)

    def _score_rows(self, rows: list[Record]) -> list[Result]:
        try:
            results = self._score_batch(rows)
        except Exception as exc:
            if len(rows) == 1:
                return [error_item(failure(exc))]
            results = []
            for row in rows:
                try:
                    results.extend(self._score_batch([row]))
                except Exception as row_exc:
                    results.append(error_item(failure(row_exc)))
        return results

    @abstractmethod
    def _score_batch(self, rows: list[Record]) -> list[Result]:
        """Score checked rows; return exactly one item per row."""

    # -- tensors ---------------------------------------------------------------------------

    def infer(self, inputs: list[RequestInput], wanted: list[str] | None) -> list[ResponseOutput]:
        """OIP inference through the records path: each input tensor is a column, or one
        `[rows, fields]` tensor (named like no field) holds the input fields in order."""
        records = self._matrix_records(inputs)
        if records is None:
            records = tensors_to_records(inputs)
        results = self.score_records(records)
        flat: list[Record] = []
        for i, item in enumerate(results):
            if is_error(item):
                assert isinstance(item, dict)
                raise InvalidInputError(f"row {i}: {item['$error']}")
            if isinstance(item, list):
                flat.extend(item)
            else:
                flat.append(item)
        return records_to_outputs(flat, self.output_fields, wanted)

    def _matrix_records(self, inputs: list[RequestInput]) -> list[Record] | None:
        """The records of one `[rows, fields]` tensor whose name is no input field; else None."""
        fields = [f.name for f in self.input_fields or []]
        if len(inputs) != 1 or not fields or inputs[0].name in fields or len(inputs[0].shape) != 2:
            return None
        if inputs[0].shape[1] != len(fields):
            raise InvalidInputError(
                f"input '{inputs[0].name}': expected shape [rows, {len(fields)}] (fields "
                f"{', '.join(fields)}), or one column tensor per field; got {inputs[0].shape}"
            )
        rows = decode_input(inputs[0]).tolist()
        return [dict(zip(fields, row, strict=True)) for row in rows]

    # -- metadata --------------------------------------------------------------------------

    def parameters(self) -> dict[str, Any]:
        """Extra metadata parameters (e.g. the python convention)."""
        return {}

    def input_tensors(self) -> list[MetadataTensor]:
        return fields_to_tensors(self.input_fields)

    def output_tensors(self) -> list[MetadataTensor]:
        return fields_to_tensors(self.output_fields)

    def metadata(self) -> MetadataModel:
        return MetadataModel(
            name=self.name,
            platform=self.platform,
            inputs=self.input_tensors(),
            outputs=self.output_tensors(),
            parameters=self.parameters(),
        )

    def close(self) -> None:  # noqa: B027 - optional hook, most models hold nothing
        """Release what the model holds (called at shutdown)."""


def fields_to_tensors(fields: list[FieldSpec] | None) -> list[MetadataTensor]:
    """Metadata tensors for schema fields: one column `[-1]` per field."""
    return [
        MetadataTensor(name=f.name, datatype=FIELD_DATATYPES[f.type], shape=[-1])
        for f in fields or []
    ]


def tensors_to_records(inputs: list[RequestInput]) -> list[Record]:
    """Column tensors (first dimension = rows) to records; names become fields."""
    columns: dict[str, list[Any]] = {}
    rows: int | None = None
    for tensor in inputs:
        if tensor.name in columns:
            raise InvalidInputError(f"input '{tensor.name}' is given twice")
        array = decode_input(tensor)
        if array.ndim == 0:
            array = array.reshape(1)
        if rows is None:
            rows = array.shape[0]
        elif array.shape[0] != rows:
            raise InvalidInputError(
                f"input '{tensor.name}' has {array.shape[0]} rows, other inputs have {rows}"
            )
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        columns[tensor.name] = array.tolist()
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def records_to_outputs(
    records: list[Record], fields: list[FieldSpec] | None, wanted: list[str] | None
) -> list[ResponseOutput]:
    """Result records to one output tensor per field (schema order, else first-seen order)."""
    types: dict[str, Datatype | None] = {}
    if fields:
        types = {f.name: FIELD_DATATYPES[f.type] for f in fields}
    else:
        for record in records:
            for key in record:
                types.setdefault(key, None)
    names = list(types)
    if wanted is not None:
        unknown = [w for w in wanted if w not in types]
        if unknown:
            raise InvalidInputError(
                f"unknown output(s) {', '.join(unknown)}; the model has: {', '.join(names)}"
            )
        names = wanted
    outputs = []
    for name in names:
        array = column_array([r.get(name) for r in records], types[name])
        outputs.append(
            encode_output(name, array, types[name] if array.dtype != np.object_ else "BYTES")
        )
    return outputs
