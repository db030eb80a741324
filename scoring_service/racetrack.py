"""Racetrack's job API on a single-model scoring service: `POST /api/v1/perform` and the
health paths `/health`, `/live`, `/ready` of Racetrack's python job runner.

Handlers do network I/O only through the request and response. `perform` takes one record's
fields as a JSON object (what Racetrack clients send) and answers what the model returns: a
Racetrack model's `perform` return value as it is (`42`, `true`, an object), any other model's
result for that record. A record the model cannot score answers 422 `{"error", "type"}`
(Racetrack answered 400 for a `TypeError`, 500 for other exceptions; a model failing is not a
server bug here). A service with several models has no single job to perform: 404 naming them.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from scoring_service.errors import InvalidInputError, ModelNotFoundError
from scoring_service.models import LoadedModel
from scoring_service.records import is_error
from scoring_service.routes import json_response
from scoring_service.state import read_body, service_state

router = APIRouter(tags=["racetrack"])


def _only_model(request: Request) -> str:
    names = service_state(request).registry.names
    if len(names) != 1:
        raise ModelNotFoundError(
            "/api/v1/perform (a Racetrack job is one model; use /v2/models/{m}/records)", names
        )
    return names[0]


def perform_one(model: LoadedModel, record: dict[str, object]) -> object:
    """What `/api/v1/perform` answers for one record (raises `InvalidInputError` when the
    model could not score it)."""
    from scoring_service.models.python import PythonModel

    if isinstance(model, PythonModel) and model.convention == "racetrack":
        return model.perform_raw(record)
    (result,) = model.score_records([record])
    if is_error(result):
        assert isinstance(result, dict)
        raise InvalidInputError(str(result["$error"]))
    return result


@router.post("/api/v1/perform")
async def perform(request: Request) -> Response:
    """One record's fields in, the job's answer out."""
    state = service_state(request)
    model = state.registry.ready_model(_only_model(request))
    body = await read_body(request, state.max_body_bytes)
    try:
        record = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return json_response({"error": f"the body is not JSON: {exc}", "type": "ValueError"}, 400)
    if not isinstance(record, dict):
        return json_response(
            {
                "error": "the payload must be a JSON object of perform's parameters",
                "type": "ValueError",
            },
            400,
        )
    try:
        if model.inline:
            answer = perform_one(model, record)
        else:
            answer = await run_in_threadpool(perform_one, model, record)
    except InvalidInputError as exc:
        return json_response({"error": exc.message, "type": "ScoringError"}, 422)
    return json_response(answer)


def _health(request: Request) -> tuple[bool, str]:
    state = service_state(request)
    names = state.registry.names
    return state.registry.all_ready(), names[0] if len(names) == 1 else ",".join(names)


@router.get("/live")
async def live() -> Response:
    """Racetrack's liveness: the process serves."""
    return json_response({"live": True})


@router.get("/ready")
async def ready(request: Request) -> Response:
    """Racetrack's readiness: every model loaded (503 until then, or after a failed load)."""
    ok, _ = _health(request)
    return json_response({"ready": ok}, 200 if ok else 503)


@router.get("/health")
async def health(request: Request) -> Response:
    """Racetrack's aggregated status."""
    ok, name = _health(request)
    body = {
        "service": "job",
        "job_name": name,
        "live": True,
        "ready": ok,
        "status": "pass" if ok else "fail",
    }
    return json_response(body, 200 if ok else 503)
