"""Models that score a numeric feature matrix `[rows, features]`: scikit-learn estimators and
gradient-boosted trees (XGBoost, LightGBM). The vectorised records path, the column-wise
answer encoding and the OIP tensor inputs they share.

No I/O: scoring is numpy plus the subclass's model call. A subclass gives the feature fields
(in the model's column order), the class labels (if any) and `_predict_arrays(x)` ->
`(prediction, probabilities or None)`; the answer of a row is
`{"prediction": value, "proba_<class>": p, ...}` (probabilities only when the model has them).

Fast path: when every record has every (float/double) feature as a JSON number, the records
become one C-ordered float64 matrix column by column, the model is called once and the answer
is encoded column-wise (the same bytes as encoding the result records). Any other request
takes the checked path of `LoadedModel` (per-record `$error` items).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from scoring_service.batching import Answer
from scoring_service.columns import RecordsEncoder, number_tokens
from scoring_service.config import FieldSpec, ModelConfig
from scoring_service.errors import InvalidInputError
from scoring_service.models.base import LoadedModel
from scoring_service.protocol import Datatype, MetadataTensor, RequestInput, ResponseOutput
from scoring_service.records import DUMP_OPTS, Record, Result
from scoring_service.tensors import datatype_of, decode_input, encode_output

NUMERIC_FIELDS = {"boolean", "int", "long", "float", "double"}
_NUMBER_TYPES = {float, int}


def label_tokens(classes: Sequence[Any]) -> dict[str, bytes] | None:
    """The JSON text of each string class label (predictions are looked up, not encoded);
    None unless every label is a string (a dict would confuse 1, 1.0 and True)."""
    values = np.asarray(classes).tolist() if len(classes) else []
    if not values or not all(type(v) is str for v in values):
        return None
    return {v: orjson.dumps(v) for v in values}


class MatrixModel(LoadedModel):
    """A model called with one feature matrix; see the module docstring."""

    inline = True

    def __init__(
        self,
        config: ModelConfig,
        *,
        fields: list[FieldSpec],
        classes: Sequence[Any] | None,
        has_proba: bool,
    ) -> None:
        super().__init__(config, input_fields=fields)
        self.features = [f.name for f in fields]
        self.dtype: Any = np.float64 if all(f.type in NUMERIC_FIELDS for f in fields) else object
        self.has_proba = has_proba and classes is not None
        self.classes = list(classes) if classes is not None else []
        self.proba_keys = [f"proba_{c}" for c in self.classes] if self.has_proba else []
        self.keys = ["prediction", *self.proba_keys]
        self._fast = self.dtype is np.float64 and all(f.type in ("float", "double") for f in fields)
        self._column_getters = [itemgetter(f) for f in self.features]
        self._encoder = RecordsEncoder(self.keys)
        self._label_tokens = label_tokens(self.classes)
        self._prediction_datatype: Datatype = (
            datatype_of(np.asarray(classes)) if classes is not None else "FP64"
        )

    @abstractmethod
    def _predict_arrays(self, x: np.ndarray[Any, Any]) -> tuple[Any, Any]:
        """(predictions `[rows]`, probabilities `[rows, classes]` or None) of a matrix."""

    # -- records ---------------------------------------------------------------------------

    def _matrix(self, rows: list[Record]) -> np.ndarray[Any, Any]:
        features = self.features
        return np.array([[row[f] for f in features] for row in rows], dtype=self.dtype)

    def _predict(self, x: np.ndarray[Any, Any]) -> tuple[list[Any], list[list[float]]]:
        prediction, proba = self._predict_arrays(x)
        return np.asarray(prediction).tolist(), proba.T.tolist() if proba is not None else []

    def _score_matrix(self, x: np.ndarray[Any, Any]) -> list[Result]:
        prediction, proba_t = self._predict(x)
        if proba_t:
            rows = zip(prediction, *proba_t, strict=True)
            return list(map(dict, map(zip, repeat(self.keys), rows)))
        return [{"prediction": p} for p in prediction]

    def _score_batch(self, rows: list[Record]) -> list[Result]:
        return self._score_matrix(self._matrix(rows))

    def _fast_matrix(self, records: list[Record]) -> np.ndarray[Any, Any] | None:
        """The float64 matrix of the records when every record has every (float/double)
        feature as a JSON number, built column by column; else None (the checked path)."""
        if not self._fast or not records:
            return None
        columns = []
        for getter in self._column_getters:
            try:
                column = list(map(getter, records))
            except KeyError:
                return None
            if not set(map(type, column)) <= _NUMBER_TYPES:
                return None
            columns.append(column)
        # C order, as a matrix built row by row: a reduction over rows (a batch-dependent step)
        # sums in memory order, so the layout can change the last bits of a result.
        return np.ascontiguousarray(np.array(columns, dtype=np.float64).T)

    def score_records(self, records: list[Record]) -> list[Result]:
        """Fast path when every record has every feature as a JSON number; else the checked
        path of the base class (per-record errors)."""
        x = self._fast_matrix(records)
        if x is not None:
            try:
                return self._score_matrix(x)
            except Exception:  # noqa: S110 - the checked path isolates the failing rows
                pass
        return super().score_records(records)

    def score_records_json(self, records: list[Record]) -> tuple[bytes, int]:
        """Fast path: one matrix, one model call, the answer encoded column-wise (the same
        bytes as encoding the result records). Else the checked path."""
        return self._answer(records, self._fast_matrix(records))

    def _answer(self, records: list[Record], x: np.ndarray[Any, Any] | None) -> Answer:
        """The answer to one request whose fast-path matrix (or None) is already built."""
        if x is not None:
            try:
                prediction, proba = self._predict_arrays(x)
            except Exception:  # the checked path isolates the failing rows
                prediction = None
            if prediction is not None:
                encoded = self._encode(prediction, proba, x.shape[0])
                if encoded is not None:
                    return encoded, 0
        return super().score_records_json(records)  # result records, encoded as they are

    def score_records_json_many(self, jobs: list[list[Record]]) -> list[Answer | BaseException]:
        """Several requests: the ones on the fast path are scored with one model call and
        their answers cut out of its arrays; the others (and all of them when that call
        raises) one by one, as `score_records_json`."""
        matrices = [self._fast_matrix(records) for records in jobs]
        fast = [(i, x) for i, x in enumerate(matrices) if x is not None]
        answers: list[Answer | BaseException | None] = [None] * len(jobs)
        if len(fast) > 1:
            try:
                prediction, proba = self._predict_arrays(np.concatenate([x for _, x in fast]))
                start = 0
                for i, x in fast:
                    end = start + x.shape[0]
                    part = None if proba is None else proba[start:end]
                    encoded = self._encode(prediction[start:end], part, x.shape[0])
                    if encoded is not None:
                        answers[i] = (encoded, 0)
                    start = end
            except Exception:  # noqa: S110 - each request is scored alone below
                pass
        out: list[Answer | BaseException] = []
        for records, matrix, answer in zip(jobs, matrices, answers, strict=True):
            if answer is None:
                try:
                    answer = self._answer(records, matrix)
                except Exception as exc:
                    answer = exc
            out.append(answer)
        return out

    def _encode(self, prediction: Any, proba: Any, n: int) -> bytes | None:
        """The records body from the model's arrays, or None when they have an unusual shape
        or type (then the caller builds result records)."""
        if not isinstance(prediction, np.ndarray) or prediction.shape != (n,):
            return None
        tokens = self._prediction_tokens(prediction)
        if tokens is None:
            return None
        columns = [tokens]
        if self.has_proba:
            if not isinstance(proba, np.ndarray) or proba.shape != (n, len(self.classes)):
                return None
            for j in range(len(self.classes)):
                column = number_tokens(proba[:, j])
                if column is None:
                    return None
                columns.append(column)
        return self._encoder(columns)

    def _prediction_tokens(self, prediction: np.ndarray[Any, Any]) -> list[bytes] | None:
        numbers = number_tokens(prediction)
        if numbers is not None:
            return numbers
        values = prediction.tolist()
        if self._label_tokens is not None:
            tokens = list(map(self._label_tokens.get, values))
            if None not in tokens:
                return tokens  # type: ignore[return-value]
        try:
            return [orjson.dumps(v, option=DUMP_OPTS) for v in values]
        except TypeError:
            return None

    # -- tensors ---------------------------------------------------------------------------

    def infer(self, inputs: list[RequestInput], wanted: list[str] | None) -> list[ResponseOutput]:
        """One 2-D input `[rows, features]`, or one column input per feature."""
        x = self._tensor_matrix(inputs)
        try:
            prediction, proba = self._predict_arrays(x)
        except Exception as exc:
            raise InvalidInputError(f"scoring failed: {type(exc).__name__}: {exc}") from exc
        outputs = {"prediction": encode_output("prediction", np.asarray(prediction))}
        if proba is not None:
            for j, key in enumerate(self.proba_keys):
                outputs[key] = encode_output(key, np.ascontiguousarray(proba[:, j]), "FP64")
        if wanted is None:
            return list(outputs.values())
        unknown = [w for w in wanted if w not in outputs]
        if unknown:
            raise InvalidInputError(
                f"unknown output(s) {', '.join(unknown)}; the model has: {', '.join(outputs)}"
            )
        return [outputs[w] for w in wanted]

    def _tensor_matrix(self, inputs: list[RequestInput]) -> np.ndarray[Any, Any]:
        n = len(self.features)
        if len(inputs) == 1 and inputs[0].name not in self.features:
            array = decode_input(inputs[0])
            if array.ndim == 1 and n == 1:
                array = array.reshape(-1, 1)
            if array.ndim != 2 or array.shape[1] != n:
                raise InvalidInputError(
                    f"input '{inputs[0].name}': expected shape [rows, {n}] "
                    f"(features {', '.join(self.features)}), got {list(array.shape)}"
                )
            return self._as_features(inputs[0].name, array)
        by_name = {t.name: t for t in inputs}
        unknown = [name for name in by_name if name not in self.features]
        if unknown:
            raise InvalidInputError(
                f"unknown input(s) {', '.join(unknown)}; the model takes "
                f"{', '.join(self.features)} (or one [rows, {n}] tensor)"
            )
        columns: list[np.ndarray[Any, Any]] = []
        for name in self.features:
            if name not in by_name:
                raise InvalidInputError(f"input '{name}' is missing")
            column = decode_input(by_name[name]).reshape(-1)
            if columns and column.shape[0] != columns[0].shape[0]:
                raise InvalidInputError(
                    f"input '{name}' has {column.shape[0]} rows, other inputs have "
                    f"{columns[0].shape[0]}"
                )
            columns.append(self._as_features(name, column))
        return np.column_stack(columns)

    def _as_features(self, name: str, array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if self.dtype is object:
            return array.astype(object)
        if array.dtype.kind not in "biuf":
            raise InvalidInputError(f"input '{name}': the model takes numbers, got BYTES")
        return array.astype(np.float64)

    def output_tensors(self) -> list[MetadataTensor]:
        tensors = [
            MetadataTensor(name="prediction", datatype=self._prediction_datatype, shape=[-1])
        ]
        tensors += [MetadataTensor(name=k, datatype="FP64", shape=[-1]) for k in self.proba_keys]
        return tensors
