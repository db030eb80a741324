"""PMML models (the `pmml` extra): a PMML document evaluated by JPMML-Evaluator on a JVM.

Loading starts the process's one JVM (JPype, Java 17+; once per process, never stopped) and
builds the evaluator from the file (I/O). Scoring hands a batch to JPMML's
`PythonEvaluatorUtil.evaluateAll` (the batch API behind the library's `evaluateAll`, called
with columns instead of a pandas DataFrame): one JVM call per batch, columns in and out. JVM
calls run off the event loop.

Inputs and outputs come from the document: the input fields of the data dictionary and
mining schema (types mapped to record field types, every one nullable: PMML's own missing
value treatment decides what a missing input means) and the target fields followed by the
output fields. `schema.input` / `schema.output`, when declared, replace them. A row JPMML
refuses (an invalid value, a missing value the model cannot treat) gets `$error` with
JPMML's message; the other rows are scored.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from common.fields import FieldType
from scoring_service.config import FieldSpec, ModelConfig
from scoring_service.errors import ModelLoadError
from scoring_service.models.base import LoadedModel, import_extra
from scoring_service.records import Record, Result, error_item

PMML_FIELD_TYPES: dict[str, FieldType] = {
    "string": "string",
    "integer": "long",
    "float": "float",
    "double": "double",
    "boolean": "boolean",
}
"""Record field types of PMML data types; the others (dates, times) are strings."""

PARALLELISM = 1
"""Threads JPMML uses for one batch: the service scales with workers and replicas, and a
request's rows are cheap next to the fork/join hand-off on a small machine."""

_jvm_lock = threading.Lock()


def _fields(model_fields: list[Any]) -> list[FieldSpec]:
    return [
        FieldSpec(
            name=f.getName(),
            type=PMML_FIELD_TYPES.get(f.getDataType(), "string"),
            nullable=True,
        )
        for f in model_fields
    ]


def _start_jvm(name: str) -> Any:
    """The JPype backend, starting the JVM on first use (one per process)."""
    backend_module = import_extra(name, "jpmml_evaluator.jpype", "pmml")
    with _jvm_lock:
        try:
            return backend_module.JPypeBackend()
        except Exception as exc:
            raise ModelLoadError(
                name,
                f"cannot start the Java runtime for JPMML ({type(exc).__name__}: {exc}); "
                "the pmml runtime needs Java 17 or newer (Debian: apt-get install "
                "openjdk-17-jre-headless), found by JAVA_HOME or on the default path",
            ) from exc


class PmmlModel(LoadedModel):
    """A JPMML evaluator of one PMML document."""

    platform = "pmml"
    inline = False

    def __init__(self, config: ModelConfig, path: Path) -> None:
        jpmml = import_extra(config.name, "jpmml_evaluator", "pmml")
        backend = _start_jvm(config.name)
        try:
            evaluator = jpmml.make_evaluator(str(path), backend=backend).verify()
            inputs = _fields(evaluator.getInputFields())
            targets = _fields(evaluator.getTargetFields())
            outputs = _fields(evaluator.getOutputFields())
            java = evaluator.javaEvaluator
            self.function = str(java.getMiningFunction().value())
            self.model_element = str(java.getModel().getClass().getSimpleName())
        except Exception as exc:
            raise ModelLoadError(
                config.name, f"JPMML cannot load {path.name}: {_java_message(exc)}"
            ) from exc
        schema = config.schema_
        super().__init__(config, input_fields=None if schema and schema.input else inputs)
        if self.output_fields is None:
            self.output_fields = [
                FieldSpec(name=f.name, type=f.type, nullable=True) for f in targets + outputs
            ]
        self.pmml_inputs = [f.name for f in inputs]
        self.targets = [f.name for f in targets]
        self.outputs = [f.name for f in outputs]
        self._evaluate_all = jpmml.PythonEvaluatorUtil.evaluateAll
        self._backend = evaluator.backend
        self._java = java

    def evaluate_columns(
        self, columns: list[str], data: list[list[Any]]
    ) -> tuple[list[str], list[list[Any]], list[str | None] | None]:
        """JPMML's batch evaluation: (result columns, their values, per-row errors or None)."""
        result = self._evaluate_all(
            self._backend, self._java, {"columns": columns, "data": data}, None, PARALLELISM
        )
        return list(result["columns"]), result["data"], result["errors"]

    def _score_batch(self, rows: list[Record]) -> list[Result]:
        names = [f.name for f in self.input_fields or []] or self.pmml_inputs
        data = [[row.get(name) for row in rows] for name in names]
        try:
            columns, values, errors = self.evaluate_columns(names, data)
        except Exception as exc:
            raise RuntimeError(_java_message(exc)) from exc
        results: list[Result] = [
            dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)
        ] or [{} for _ in rows]
        if errors:
            for i, error in enumerate(errors):
                if error is not None:
                    results[i] = error_item(f"scoring failed: {error}")
        return results

    def parameters(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "model": self.model_element,
            "inputs": self.pmml_inputs,
            "targets": self.targets,
            "outputs": self.outputs,
        }


def _java_message(exc: BaseException) -> str:
    """A Java exception as `Class: message` (JPype's text repeats the class name)."""
    getter = getattr(exc, "getMessage", None)
    cls = getattr(exc, "getClass", None)
    if callable(getter) and callable(cls):
        return f"{cls().getSimpleName()}: {getter()}"
    return f"{type(exc).__name__}: {exc}"
