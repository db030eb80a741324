"""The tekscore IR: models of the five document kinds, loading with file:line errors, and
pre-processing into the one Helm values file (DESIGN.md section 2).

Imports nothing of ours but `common`. Pure except the loaders that read files (`load_paths`,
`load_registry`, `load_globals`, `read_registry`). The job bundle (`JobBundle`, `render_bundle`)
is the input of pre-processing for one job, as the scheduler stores it. Typical use::

    docs = load_paths([Path("examples/iris")])
    rendered = preprocess(docs, parameters={"batchSize": 512})
    rendered.text          # the values file, deterministic YAML
"""

from ir.access import Access
from ir.bundle import IRFiles, JobBundle, Pipeline, read_registry, render_bundle
from ir.errors import IRError, IRValidationError, Issue
from ir.globals import apply_globals, load_globals
from ir.loader import SourceDoc, expand_paths, load_objects, load_paths, load_registry, load_texts
from ir.preprocess import JobInfo, Rendered, preprocess
from ir.render import content_hash, to_yaml
from ir.schema import KINDS, ir_json_schema, values_json_schema
from ir.values import FlowValues, GlobalValues, JobValues, ServiceValues, Values

__all__ = [
    "KINDS",
    "Access",
    "FlowValues",
    "GlobalValues",
    "IRError",
    "IRFiles",
    "IRValidationError",
    "Issue",
    "JobBundle",
    "JobInfo",
    "JobValues",
    "Pipeline",
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
    "read_registry",
    "render_bundle",
    "to_yaml",
    "values_json_schema",
]
