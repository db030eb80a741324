"""The test-data server (`tekscore channel test-data`, the platform's `test-data` sub-chart): a
source of sample records and a sink that keeps what it receives, over HTTP, so a pipeline can be
tried in a cluster without Kafka or S3 (flows reach it with `type: test-data` channels,
`scoring_flow/channels/testdata.py`).

Does I/O: reads the samples folder (one file per sample, named as the sample: the ConfigMap the
sub-chart mounts) on each request, and keeps sinks in memory (lost on restart; at most
`max_bytes` in all, uploads included: past that a write gets 413 and the flow fails, nothing is
dropped silently). The bytes are the flows' own encoding (jsonl, csv, avro); the server does not
look into them.

| request | answer |
|---|---|
| `GET /` | `{"samples": [names], "sinks": {name: {"bytes": n}}}` |
| `GET /samples/{name}` | the sample's bytes (404 naming the samples there are) |
| `POST /sinks/{name}/uploads` | 201 `{"upload": id}`: a new upload, invisible until committed |
| `POST /sinks/{name}/uploads/{id}` | the body appended to the upload (204) |
| `POST /sinks/{name}/uploads/{id}/commit` | the upload becomes the sink's content (204) |
| `DELETE /sinks/{name}/uploads/{id}` | the upload dropped (204) |
| `GET /sinks/{name}` | what the sink holds (404 when nothing was committed) |
| `DELETE /sinks/{name}` | the sink emptied (204) |
| `GET /healthz` | 200 |
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DEFAULT_MAX_BYTES = 64 << 20


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(message: str, status: int) -> Response:
    return _json({"error": message}, status)


@dataclass
class _Store:
    samples: Path
    max_bytes: int
    sinks: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, tuple[str, bytearray]] = field(default_factory=dict)

    def held(self) -> int:
        return sum(map(len, self.sinks.values())) + sum(len(b) for _, b in self.uploads.values())

    def sample_names(self) -> list[str]:
        if not self.samples.is_dir():
            return []
        return sorted(p.name for p in self.samples.iterdir() if NAME.match(p.name) and p.is_file())


def make_app(samples: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Starlette:
    """The server's ASGI app over the samples folder `samples`."""
    store = _Store(samples=samples, max_bytes=max_bytes)

    def name_of(request: Request) -> str | Response:
        name = str(request.path_params["name"])
        if not NAME.match(name):
            return _error(f"{name!r} is not a name (lowercase letters, digits and '-')", 422)
        return name

    def upload_of(request: Request) -> tuple[str, str, bytearray] | Response:
        """(sink name, upload id, its bytes) of a request on an upload."""
        name = name_of(request)
        if isinstance(name, Response):
            return name
        upload = str(request.path_params["upload"])
        found = store.uploads.get(upload)
        if found is None or found[0] != name:
            return _error(f"no upload {upload} to sink {name}", 404)
        return name, upload, found[1]

    async def index(request: Request) -> Response:
        sinks = {n: {"bytes": len(b)} for n, b in sorted(store.sinks.items())}
        return _json({"samples": store.sample_names(), "sinks": sinks})

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    async def sample(request: Request) -> Response:
        name = name_of(request)
        if isinstance(name, Response):
            return name
        path = store.samples / name
        if not path.is_file():
            known = ", ".join(store.sample_names()) or "none"
            return _error(f"no sample {name} (samples: {known})", 404)
        return Response(path.read_bytes(), media_type="application/octet-stream")

    async def new_upload(request: Request) -> Response:
        name = name_of(request)
        if isinstance(name, Response):
            return name
        upload = secrets.token_hex(8)
        store.uploads[upload] = (name, bytearray())
        return _json({"upload": upload}, 201)

    async def append(request: Request) -> Response:
        upload = upload_of(request)
        if isinstance(upload, Response):
            return upload
        body = await request.body()
        if store.held() + len(body) > store.max_bytes:
            return _error(
                f"the test-data server holds at most {store.max_bytes} bytes "
                "(--max-bytes); empty a sink with DELETE /sinks/{name}",
                413,
            )
        upload[2].extend(body)
        return Response(status_code=204)

    async def commit(request: Request) -> Response:
        upload = upload_of(request)
        if isinstance(upload, Response):
            return upload
        name, upload_id, data = upload
        del store.uploads[upload_id]
        store.sinks[name] = bytes(data)
        return Response(status_code=204)

    async def drop(request: Request) -> Response:
        upload = upload_of(request)
        if isinstance(upload, Response):
            return upload
        del store.uploads[upload[1]]
        return Response(status_code=204)

    async def sink(request: Request) -> Response:
        name = name_of(request)
        if isinstance(name, Response):
            return name
        if request.method == "DELETE":
            store.sinks.pop(name, None)
            return Response(status_code=204)
        if name not in store.sinks:
            known = ", ".join(sorted(store.sinks)) or "none"
            return _error(f"sink {name} holds nothing yet (sinks: {known})", 404)
        return Response(store.sinks[name], media_type="application/octet-stream")

    return Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", healthz),
            Route("/samples/{name}", sample),
            Route("/sinks/{name}/uploads", new_upload, methods=["POST"]),
            Route("/sinks/{name}/uploads/{upload}", append, methods=["POST"]),
            Route("/sinks/{name}/uploads/{upload}", drop, methods=["DELETE"]),
            Route("/sinks/{name}/uploads/{upload}/commit", commit, methods=["POST"]),
            Route("/sinks/{name}", sink, methods=["GET", "DELETE"]),
        ]
    )
