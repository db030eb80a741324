"""Open Inference Protocol V2 (REST) shapes: requests, responses and metadata.

Pure data (pydantic v2), no I/O. Field names follow the protocol exactly
(https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MetadataTensor(_Shape):
    """One input or output tensor in model metadata; -1 marks a variable dimension."""

    name: str
    datatype: Datatype
    shape: list[int]


class MetadataServer(_Shape):
    """`GET /v2`."""

    name: str
    version: str
    extensions: list[str]


class MetadataModel(_Shape):
    """`GET /v2/models/{m}`; `parameters.convention` tells how a python model is called."""

    name: str
    versions: list[str] = Field(default_factory=list)
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: dict[str, Any] = Field(default_factory=dict)


class RequestInput(_Shape):
    """One input tensor: `data` row-major, flat or nested."""

    name: str = Field(min_length=1)
    shape: list[int] = Field(min_length=0)
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any]


class RequestOutput(_Shape):
    """An output the caller asks for."""

    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(_Shape):
    """`POST /v2/models/{m}/infer` body."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(_Shape):
    """One output tensor, `data` flat row-major."""

    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any]


class InferenceResponse(_Shape):
    """`POST /v2/models/{m}/infer` answer."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]
