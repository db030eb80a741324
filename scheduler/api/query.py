"""Query strings validated by one pydantic model per route, and that model's OpenAPI parameters.

No I/O. FastAPI resolves each declared query parameter on every request through its generic
dependency machinery (about 8 µs per parameter here, as much as the SQL of a page: see
docs/benchmarks.md); a route with several filters reads `request.query_params` with
`parse_query` instead, and declares the same parameters in its OpenAPI operation with
`query_openapi`, so clients generated from the schema are unchanged. Errors are FastAPI's own
`RequestValidationError` with `("query", name)` locations, so they answer 422 like any other.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar, get_origin

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams

M = TypeVar("M", bound=BaseModel)


@cache
def _list_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields that take repeated parameters (`?label=a&label=b`)."""
    return frozenset(
        name for name, f in model.model_fields.items() if get_origin(f.annotation) is list
    )


def parse_query(model: type[M], params: QueryParams) -> M:
    """The query string as `model`; unknown parameters are ignored, as FastAPI does."""
    repeated = _list_fields(model)
    data: dict[str, Any] = {}
    for name in model.model_fields:
        if name in params:
            data[name] = params.getlist(name) if name in repeated else params[name]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


def query_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` declaring the model's fields as optional query parameters."""
    schema = model.model_json_schema()
    defs: dict[str, Any] = schema.get("$defs", {})
    parameters = []
    for name, prop in schema["properties"].items():
        prop = _inline(prop, defs)
        description = prop.pop("description", None)
        prop.pop("title", None)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": False}
        if description:
            parameter["description"] = description
        parameter["schema"] = prop
        parameters.append(parameter)
    return {"parameters": parameters}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """`node` with every local `$ref` replaced by its definition."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node
