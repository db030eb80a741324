"""The API's request and response shapes (pydantic v2), one family per resource.

Pure data, no I/O: `JobCreate` (start request), `JobPublic` / `JobsPublic` (status), the list
query (`JobListParams` as it comes in, `JobQuery` as backends read it, the page cursor codec),
`FlowReport` (flow callbacks), `EventPublic`, `ErrorBody` (422s). The job bundle the install task
fetches is `ir.bundle.JobBundle`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from ir.bundle import IRFiles
from scheduler.states import State

Scalar = str | int | float | bool
LabelKey = Annotated[
    str,
    StringConstraints(
        pattern=r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
    ),
]
LabelValue = Annotated[
    str, StringConstraints(pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobCreate(_Model):
    """Start a scoring job from a pipeline IR."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "pipeline": {"files": {"pipeline.yaml": "apiVersion: tekscore.dev/v1\n..."}},
                    "parameters": {"batchSize": 512},
                    "name": "nightly iris",
                    "labels": {"team": "risk"},
                }
            ]
        },
    )

    pipeline: IRFiles | list[dict[str, Any]] | dict[str, Any] = Field(
        union_mode="left_to_right",
        description="The IR: one document, a list of documents, or {files: {name: text}}.",
    )
    parameters: dict[str, Scalar] = Field(default_factory=dict)
    name: Annotated[str, StringConstraints(max_length=253)] | None = None
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=64)
    base_dir: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = Field(
        default=None, description="Where relative paths of IR text resolve (default: server cwd)."
    )


FlowState = Literal["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "NOT_STARTED"]


class ReplicaStatus(_Model):
    """One process of a flow as it last reported: a batch shard (`index` = its shard) or a
    streaming replica (`index` from the local launcher; on Kubernetes its `pod`)."""

    index: int | None = None
    pod: str | None = None
    state: FlowState = "RUNNING"
    records_in: int = 0
    records_out: int = 0
    records_failed: int = 0
    records_filtered: int = 0
    error: str | None = None


class FlowStatus(_Model):
    """A flow's progress: the sum of its processes' reports (`replicas`, one row each)."""

    mode: Literal["batch", "streaming"]
    state: FlowState = "PENDING"
    records_in: int = 0
    records_out: int = 0
    records_failed: int = 0
    records_filtered: int = 0
    shards: int = 1
    shards_done: int = 0
    error: str | None = None
    endpoint: str | None = Field(
        default=None, description="Where an http-source flow takes `POST`s while the job runs."
    )
    replicas: list[ReplicaStatus] = Field(default_factory=list)


class ServiceStatus(_Model):
    """A scoring service the job runs."""

    runtime: str
    endpoint: str | None = Field(
        default=None,
        description="The service's base URL (Open Inference Protocol) while the job runs.",
    )


class BackendInfo(_Model):
    """Where the job runs."""

    kind: Literal["local", "tekton"]
    namespace: str | None = None
    pipelinerun: str | None = None
    release: str | None = None


class ErrorItem(_Model):
    """One problem: where (`loc`, and for IR text `file` and `line`) and what; for a failed
    service or flow, the last lines of its log (`log_tail`)."""

    loc: list[str | int]
    msg: str
    file: str | None = None
    line: int | None = None
    log_tail: str | None = None


class JobPublic(_Model):
    """A job's status."""

    id: str
    name: str | None = None
    pipeline: str
    state: State
    task: Literal["install", "wait", "finally"] | None = None
    reason: str | None = None
    message: str | None = None
    errors: list[ErrorItem] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    flows: dict[str, FlowStatus] = Field(default_factory=dict)
    services: dict[str, ServiceStatus] = Field(default_factory=dict)
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    content_hash: str
    backend: BackendInfo


class JobRecord(JobPublic):
    """A job as stored: the public status plus what only the scheduler needs: the state the
    job ends in while STOPPING, the task that failed and the part (service or flow) that did.
    Fields of earlier versions (per-shard counters, now `flows.<f>.replicas`) are ignored."""

    model_config = ConfigDict(extra="ignore")

    outcome: State | None = None
    failed_task: Literal["install", "wait", "finally"] | None = None
    failed_part: list[str] | None = None

    def public(self) -> JobPublic:
        internal = {"outcome", "failed_task", "failed_part"}
        return JobPublic.model_validate(self.model_dump(exclude=internal))


@dataclass(frozen=True)
class JobQuery:
    """What a list of jobs asks for: filters (all must match), page size and cursor."""

    state: State | None = None
    pipeline: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    limit: int = 50
    cursor: str | None = None


def encode_cursor(seq: int) -> str:
    """The opaque `next` cursor of a page that ends at sequence number `seq`."""
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The sequence number in a cursor; ValueError when it is not one of ours."""
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        value = int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a valid cursor: {cursor!r}") from exc
    if value < 0:
        raise ValueError(f"not a valid cursor: {cursor!r}")
    return value


class JobListParams(BaseModel):
    """The query of `GET /api/v1/jobs`, validated as one model (one pass per request)."""

    state: State | None = None
    pipeline: str | None = Field(default=None, max_length=63)
    label: list[str] = Field(default_factory=list, description="key=value, repeatable")
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = Field(default=None, max_length=64)

    @field_validator("label")
    @classmethod
    def _pairs(cls, value: list[str]) -> list[str]:
        for item in value:
            key, sep, _ = item.partition("=")
            if not sep or not key:
                raise PydanticCustomError(
                    "value_error", "expected key=value, got {item}", {"item": repr(item)}
                )
        return value

    @field_validator("cursor")
    @classmethod
    def _ours(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                decode_cursor(value)
            except ValueError as exc:
                raise PydanticCustomError("value_error", "{reason}", {"reason": str(exc)}) from None
        return value

    def query(self) -> JobQuery:
        """The store's query: the labels as a mapping (a repeated key: the last one wins)."""
        labels = dict(item.split("=", 1) for item in self.label)
        return JobQuery(
            state=self.state,
            pipeline=self.pipeline,
            labels=labels,
            limit=self.limit,
            cursor=self.cursor,
        )


class JobsPublic(_Model):
    """A page of jobs, newest first; `next` is the cursor of the following page."""

    items: list[JobPublic]
    next: str | None = None


class EventPublic(_Model):
    """One state transition of a job."""

    at: datetime
    state: State
    task: str | None = None
    reason: str | None = None
    message: str | None = None


class FlowReport(_Model):
    """A flow's counters: progress every few seconds, completion at the end of a batch flow."""

    records_in: int = Field(ge=0)
    records_out: int = Field(ge=0)
    records_failed: int = Field(ge=0)
    records_filtered: int = Field(default=0, ge=0)
    shard: int = Field(default=0, ge=0)
    shards: int = Field(default=1, ge=1)
    replica: int | None = Field(default=None, ge=0, description="The replica's index (local).")
    pod: (
        Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")] | None
    ) = Field(default=None, description="The reporting pod (Kubernetes).")
    error: Annotated[str, StringConstraints(max_length=65536)] | None = None


class UserInfo(_Model):
    """Who the caller is to the API: whether a token was needed, and what it may do."""

    authenticated: bool = Field(description="False when the server has no API tokens.")
    role: Literal["read", "submit", "admin"]
    roles: list[Literal["read", "submit", "admin"]] = Field(
        description="The role and every role below it: what the caller may do."
    )


class ErrorBody(_Model):
    """422: every problem of the request or its IR."""

    errors: list[ErrorItem]


class Problem(_Model):
    """Any other error: a sentence saying what is wrong."""

    detail: str
