"""HTTP routes: Open Inference Protocol V2, the records endpoint, and `/metrics`.

Handlers do network I/O only through the request/response; scoring of python models runs in
a worker thread, numeric models (sklearn, onnx) score on the event loop (no thread hop).
Request bodies are read raw and decoded with orjson (no per-request pydantic for records);
the two scoring endpoints are plain Starlette routes (`scoring_routes`).
"""

from __future__ import annotations

import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.types import Scope

from scoring_service.errors import BadRequestError, InvalidInputError, RequestError
from scoring_service.protocol import InferenceRequest, InferenceResponse, MetadataServer
from scoring_service.records import parse_records
from scoring_service.state import read_body, service_state

router = APIRouter()

SERVER_NAME = "tekscore-scoring-service"
BINARY_HEADER = "inference-header-content-length"
"""Sent with a body in the OIP binary tensor data extension (JSON header, then raw tensors)."""
JSON = "application/json"


def json_response(content: Any, status_code: int = 200) -> Response:
    """A JSON response encoded with orjson."""
    return Response(
        orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status_code,
        media_type=JSON,
    )


def _version() -> str:
    try:
        return version("tekscore")
    except PackageNotFoundError:
        return "0.0.0"


@router.get("/v2", tags=["server"])
async def server_metadata() -> Response:
    meta = MetadataServer(name=SERVER_NAME, version=_version(), extensions=["records", "metrics"])
    return json_response(meta.model_dump())


@router.get("/v2/health/live", tags=["server"])
async def live() -> Response:
    return json_response({"live": True})


@router.get("/v2/health/ready", tags=["server"])
async def ready(request: Request) -> Response:
    state = service_state(request)
    registry = state.registry
    if registry.all_ready():
        if state.workers is None:
            return json_response({"ready": True})
        count = state.workers.ready_count()
        if count >= state.workers.expected:
            return json_response({"ready": True})
        waiting = f"not ready: {count} of {state.workers.expected} workers have loaded their models"
        return json_response({"ready": False, "error": waiting}, 503)
    reasons = registry.not_ready_reasons()
    message = "; ".join(f"model '{n}': {r}" for n, r in reasons.items())
    return json_response({"ready": False, "error": f"not ready: {message}", "models": reasons}, 503)


@router.get("/v2/models/{model_name}/ready", tags=["models"])
async def model_ready(model_name: str, request: Request) -> Response:
    entry = service_state(request).registry.entry(model_name)
    if entry.state == "ready":
        return json_response({"name": model_name, "ready": True})
    body = {
        "name": model_name,
        "ready": False,
        "state": entry.state,
        "error": f"model '{model_name}' is not ready: {entry.reason}",
    }
    return json_response(body, 503)


@router.get("/v2/models/{model_name}", tags=["models"])
async def model_metadata(model_name: str, request: Request) -> Response:
    model = service_state(request).registry.ready_model(model_name)
    return json_response(model.metadata().model_dump())


async def score_records(request: Request) -> Response:
    """A JSON list of records in; a list of the same length out (see docs/scoring-service.md)."""
    model_name: str = request.path_params["model_name"]
    state = service_state(request)
    started = time.perf_counter()
    rows = 0
    try:
        model = state.registry.ready_model(model_name)
        if model.coalesce and state.spec.settings.coalesce:
            with model.coalescer.track():
                records = parse_records(await read_body(request, state.max_body_bytes))
                rows = len(records)
                payload, failed = await model.coalescer.score(records)
        else:
            records = parse_records(await read_body(request, state.max_body_bytes))
            rows = len(records)
            if model.inline:
                payload, failed = model.score_records_json(records)
            else:
                payload, failed = await run_in_threadpool(model.score_records_json, records)
    except RequestError as exc:
        _observe(request, model_name, "records", exc.status_code, rows, 0, started)
        raise
    _observe(request, model_name, "records", 200, rows, failed, started)
    return Response(payload, media_type=JSON)


async def infer(request: Request) -> Response:
    """Open Inference Protocol V2 tensor inference."""
    model_name: str = request.path_params["model_name"]
    state = service_state(request)
    started = time.perf_counter()
    rows = 0
    try:
        model = state.registry.ready_model(model_name)
        if BINARY_HEADER in request.headers:
            raise BadRequestError(
                "the binary tensor data extension is not supported: send the tensors as JSON "
                "data (tritonclient: binary_data=False)"
            )
        body = await read_body(request, state.max_body_bytes)
        try:
            req = InferenceRequest.model_validate_json(body)
        except ValidationError as exc:
            raise InvalidInputError(describe_validation(exc)) from exc
        rows = req.inputs[0].shape[0] if req.inputs[0].shape else 1
        wanted = [o.name for o in req.outputs] if req.outputs else None
        if model.inline:
            outputs = model.infer(req.inputs, wanted)
        else:
            outputs = await run_in_threadpool(model.infer, req.inputs, wanted)
        response = InferenceResponse(model_name=model_name, id=req.id, outputs=outputs)
        payload = response.model_dump_json(exclude_none=True).encode()
    except RequestError as exc:
        _observe(request, model_name, "infer", exc.status_code, rows, 0, started)
        raise
    _observe(request, model_name, "infer", 200, rows, 0, started)
    return Response(payload, media_type=JSON)


SCORING_ENDPOINTS = {"records": score_records, "infer": infer}
_MODELS_PREFIX = "/v2/models/"


def scoring_endpoint(scope: Scope) -> tuple[str, Any] | None:
    """(model name, handler) when `scope` is `POST /v2/models/{m}/records|infer`, else None.
    Matches exactly what the Starlette routes match (a model name has no `/`)."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if not path.startswith(_MODELS_PREFIX):
        return None
    name, sep, endpoint = path[len(_MODELS_PREFIX) :].partition("/")
    handler = SCORING_ENDPOINTS.get(endpoint) if sep and name else None
    return (name, handler) if handler is not None else None


def scoring_routes() -> list[Route]:
    """The two scoring endpoints as plain Starlette routes: they read and write raw bytes, so
    FastAPI's per-request parameter solving (tens of microseconds) is skipped. They are put
    first in the app's route list."""
    return [
        Route("/v2/models/{model_name}/records", score_records, methods=["POST"]),
        Route("/v2/models/{model_name}/infer", infer, methods=["POST"]),
    ]


@router.get("/metrics", tags=["server"])
async def metrics(request: Request) -> Response:
    state = service_state(request)
    for name, entry in state.registry.entries.items():
        state.metrics.ready.labels(name).set(1 if entry.state == "ready" else 0)
    body = state.metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


def describe_validation(exc: ValidationError) -> str:
    """pydantic errors as one line naming each field: `inputs[0].datatype: ...`."""
    parts = []
    for err in exc.errors():
        loc = ""
        for p in err["loc"]:
            loc += f"[{p}]" if isinstance(p, int) else (f".{p}" if loc else str(p))
        parts.append(f"{loc or 'body'}: {err['msg']}")
    return "; ".join(parts)


def _observe(
    request: Request, model: str, endpoint: str, code: int, rows: int, failed: int, started: float
) -> None:
    state = service_state(request)
    label = model if model in state.registry.entries else "_unknown"
    state.metrics.observe(
        label,
        endpoint,
        code=code,
        rows=rows,
        record_errors=failed,
        seconds=time.perf_counter() - started,
    )
