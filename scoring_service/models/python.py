"""Python models run unchanged, in one of three conventions, detected from the module.

- `racetrack`: a class defined in the module with a `perform(self, ...)` method, instantiated
  once; each record's fields are passed as keyword arguments (only those `perform` names,
  unless it takes `**kwargs`); one output each. A Racetrack job folder (`job.yaml`) names its
  file and class (`scoring_service.models.jobs`).
- `fastscore`: module-level optional `begin()` (called once at load), a generator (or plain
  function) `action(datum)` called per record, yielding 0..n outputs; optional `end()` at close.
- `score`: module-level `score(records) -> records`, called once per batch (vectorised).

Loading imports the module file (I/O); scoring calls model code, which runs off the event
loop, one call at a time per model (model code is written for single-threaded engines).
Outputs that are not objects are wrapped as `{field: value}` (the single output field of the
schema, else `output`).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from scoring_service.config import ModelConfig
from scoring_service.errors import ConventionError, InvalidInputError, ModelLoadError
from scoring_service.models.base import LoadedModel, as_record, failure
from scoring_service.records import Record, Result, error_item

CONVENTIONS = ("racetrack", "fastscore", "score")


def import_module_file(name: str, path: Path) -> ModuleType:
    """Import a module from a file, its folder on sys.path so sibling imports work."""
    if path.suffix != ".py":
        raise ModelLoadError(name, f"a python model is a .py module file, got {path.name}")
    module_name = f"tekscore_model_{name.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(name, f"cannot import {path}")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ModelLoadError(
            name, f"importing {path.name} raised {type(exc).__name__}: {exc}"
        ) from exc
    return module


def named_class(name: str, module: ModuleType, class_name: str) -> Any:
    """The class a Racetrack manifest names (`entrypoint_class`), with its `perform`."""
    entry = getattr(module, class_name, None)
    if not inspect.isclass(entry):
        raise ConventionError(name, f"entrypoint_class {class_name!r} is not a class of the module")
    if not callable(getattr(entry, "perform", None)):
        raise ConventionError(name, f"entrypoint_class {class_name!r} has no perform()")
    return entry


def detect_convention(name: str, module: ModuleType) -> tuple[str, Any]:
    """Which convention the module follows, and its entry object; one and only one must fit."""
    found: list[tuple[str, Any]] = []
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and obj.__module__ == module.__name__
        and callable(getattr(obj, "perform", None))
    ]
    if len(classes) > 1:
        names = ", ".join(c.__name__ for c in classes)
        raise ConventionError(
            name,
            f"several classes with perform(): {names}; keep one, or name it in a Racetrack "
            "job's manifest (jobtype_extra.entrypoint_class)",
        )
    if classes:
        found.append(("racetrack", classes[0]))
    action = getattr(module, "action", None)
    if callable(action):
        found.append(("fastscore", action))
    score = getattr(module, "score", None)
    if callable(score):
        found.append(("score", score))
    if not found:
        raise ConventionError(
            name,
            "the module follows none of the conventions: a class with perform(self, **kwargs) "
            "(Racetrack), a generator action(datum) with optional begin() (FastScore), "
            "or score(records) -> records",
        )
    if len(found) > 1:
        kinds = " and ".join(k for k, _ in found)
        raise ConventionError(name, f"the module fits several conventions ({kinds}); keep one")
    return found[0]


def perform_arguments(perform: Callable[..., Any]) -> Callable[[Record], Record]:
    """What of a record `perform` receives: every field when it takes `**kwargs`, else only
    the fields its signature names (a record carries more than a job's parameters: an id, the
    fields of the other steps)."""
    try:
        params = inspect.signature(perform).parameters.values()
    except (TypeError, ValueError):
        return lambda record: record
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return lambda record: record
    names = frozenset(
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )
    return lambda record: {k: v for k, v in record.items() if k in names}


class PythonModel(LoadedModel):
    """A python module model; see the module docstring for the conventions."""

    platform = "python"
    inline = False

    def __init__(self, config: ModelConfig, path: Path) -> None:
        super().__init__(config)
        class_name = None
        if path.is_dir():  # a Racetrack job folder
            from scoring_service.models.jobs import load_job

            job = load_job(config.name, path)
            path, class_name = job.entrypoint, job.class_name
        self.module = import_module_file(config.name, path)
        if class_name is not None:
            self.convention, entry = "racetrack", named_class(config.name, self.module, class_name)
        else:
            self.convention, entry = detect_convention(config.name, self.module)
        self._lock = threading.Lock()
        self._call: Callable[[list[Record]], list[Result]]
        if self.convention == "racetrack":
            try:
                instance = entry()
            except Exception as exc:
                raise ModelLoadError(
                    config.name, f"{entry.__name__}() raised {type(exc).__name__}: {exc}"
                ) from exc
            self._perform = instance.perform
            self._arguments = perform_arguments(instance.perform)
            self._call = self._racetrack
        elif self.convention == "fastscore":
            begin = getattr(self.module, "begin", None)
            if callable(begin):
                try:
                    begin()
                except Exception as exc:
                    raise ModelLoadError(
                        config.name, f"begin() raised {type(exc).__name__}: {exc}"
                    ) from exc
            self._action = entry
            self._call = self._fastscore
        else:
            self._score = entry
            self._call = self._vectorised

    def parameters(self) -> dict[str, Any]:
        return {"convention": self.convention}

    def _score_batch(self, rows: list[Record]) -> list[Result]:
        with self._lock:
            return self._call(rows)

    def _racetrack(self, rows: list[Record]) -> list[Result]:
        out: list[Result] = []
        for row in rows:
            try:
                out.append(as_record(self._perform(**self._arguments(row)), self.default_output))
            except Exception as exc:
                out.append(error_item(failure(exc)))
        return out

    def perform_raw(self, record: Record) -> Any:
        """A Racetrack model's `perform` return value for one record, as it is (what
        `/api/v1/perform` answers); `InvalidInputError` when it raised."""
        if self.convention != "racetrack":
            raise InvalidInputError(
                f"model '{self.name}' has no perform() (a {self.convention} model)"
            )
        with self._lock:
            try:
                return self._perform(**self._arguments(record))
            except Exception as exc:
                raise InvalidInputError(failure(exc)) from exc

    def _fastscore(self, rows: list[Record]) -> list[Result]:
        out: list[Result] = []
        for row in rows:
            try:
                produced = self._action(row)
                values: Iterable[Any]
                if inspect.isgenerator(produced) or isinstance(produced, (list, tuple)):
                    values = produced
                else:
                    values = [] if produced is None else [produced]
                out.append([as_record(v, self.default_output) for v in values])
            except Exception as exc:
                out.append(error_item(failure(exc)))
        return out

    def _vectorised(self, rows: list[Record]) -> list[Result]:
        produced = list(self._score(rows))
        if len(produced) != len(rows):
            raise ValueError(f"score() returned {len(produced)} results for {len(rows)} records")
        return [as_record(v, self.default_output) for v in produced]

    def close(self) -> None:
        end = getattr(self.module, "end", None)
        if self.convention == "fastscore" and callable(end):
            end()
