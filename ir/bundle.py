"""The job bundle: everything needed to pre-process a job exactly as the scheduler did.

The scheduler builds it when a job starts and serves it at `GET /api/v1/jobs/{id}/ir`; the
Kubernetes install task downloads it and calls `render_bundle`, and checks the result's
`contentHash` against the one the scheduler computed. Pure except `read_registry`, which reads
the channel-registry folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ir.access import Access
from ir.limits import Limit
from ir.loader import SourceDoc, expand_paths, load_objects, load_texts, read_schema_files
from ir.preprocess import JobInfo, Rendered, preprocess
from ir.values import GlobalValues

Scalar = str | int | float | bool


class IRFiles(BaseModel):
    """IR as text files: `{"files": {"pipeline.yaml": "..."}}`. An absolute file name makes
    relative paths in that file resolve against its folder."""

    model_config = ConfigDict(extra="forbid")

    files: dict[Annotated[str, StringConstraints(min_length=1, max_length=4096)], str] = Field(
        min_length=1
    )


Pipeline = IRFiles | list[dict[str, Any]] | dict[str, Any]


class JobBundle(BaseModel):
    """The inputs of pre-processing for one job, and the hash of its result."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    pipeline: Pipeline = Field(union_mode="left_to_right")
    parameters: dict[str, Scalar] = Field(default_factory=dict)
    base_dir: str
    channels: dict[str, str] = Field(
        default_factory=dict, description="The server's channel registry: file name -> text."
    )
    globals: dict[str, Any] = Field(default_factory=dict)
    content_hash: str = ""


def load_pipeline(
    pipeline: Pipeline, *, base_dir: Path, max_documents: Limit | None = None
) -> list[SourceDoc]:
    """The IR documents of a start request: text files, a list of documents, or one document."""
    if isinstance(pipeline, IRFiles):
        return load_texts(pipeline.files, base_dir=base_dir, max_documents=max_documents)
    objects = pipeline if isinstance(pipeline, list) else [pipeline]
    return load_objects(objects, base_dir=base_dir, max_documents=max_documents)


def read_registry(folder: Path | None) -> dict[str, str]:
    """The channel-registry folder as `{absolute file name: text}` (empty without a folder): its
    DataChannel documents, FastScore stream descriptors (`*.json`) and the Avro schemas
    (`*.avsc`) those name."""
    if folder is None:
        return {}
    files = {str(p.resolve()): p.read_text(encoding="utf-8") for p in expand_paths([folder])}
    return {**files, **read_schema_files(folder.resolve())}


def render_bundle(
    bundle: JobBundle, *, max_documents: Limit | None = None, access: Access | None = None
) -> Rendered:
    """Pre-process the bundle; raises `IRValidationError` with every problem. The server
    passes its documents limit and its access rules when a request comes in; a stored bundle
    passed them already."""
    docs = load_pipeline(
        bundle.pipeline, base_dir=Path(bundle.base_dir), max_documents=max_documents
    )
    registry = load_texts(bundle.channels, base_dir=Path("/")) if bundle.channels else []
    return preprocess(
        docs,
        parameters=bundle.parameters,
        registry=registry,
        globals_=GlobalValues.model_validate(bundle.globals),
        job=JobInfo(id=bundle.job_id, name=bundle.name, labels=bundle.labels),
        access=access,
    )
