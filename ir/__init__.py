"""The tekscore IR: models of the five document kinds, loading with file:line errors, and
pre-processing into the one Helm values file (DESIGN.md section 2).

Imports nothing else of ours. Pure except the loaders that read files (`load_paths`,
`load_registry`, `load_globals`). Typical use::

    docs = load_paths([Path("examples/iris")])
    rendered = preprocess(docs, parameters={"batchSize": 512})
    rendered.text          # the values file, deterministic YAML
"""

from ir.errors import IRError, IRValidationError, Issue
from ir.globals import apply_globals, load_globals
from ir.loader import SourceDoc, expand_paths, load_objects, load_paths, load_registry, load_texts
from ir.preprocess import JobInfo, Rendered, preprocess
from ir.render import content_hash, to_yaml
from ir.schema import KINDS, ir_json_schema, values_json_schema
from ir.values import FlowValues, GlobalValues, JobValues, ServiceValues, Values

__all__ = [
    "KINDS",
    "FlowValues",
    "GlobalValues",
    "IRError",
    "IRValidationError",
    "Issue",
    "JobInfo",
    "JobValues",
    "Rendered",
    "ServiceValues",
    "SourceDoc",
    "Values",
    "apply_globals",
    "content_hash",
    "expand_paths",
    "ir_json_schema",
    "load_globals",
    "load_objects",
    "load_paths",
    "load_registry",
    "load_texts",
    "preprocess",
    "to_yaml",
    "values_json_schema",
]
