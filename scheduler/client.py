"""A small synchronous client of the scheduling server's API (what the CLI uses).

Does HTTP I/O (httpx). Errors of the server come back as `ApiError` with the status and the
server's message (for 422: every error line, `FILE:LINE: PATH: MESSAGE`); a server that cannot
be reached is an `ApiError` too (status 0). Imports stay light: `ir` is imported only to read IR
files for a start.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

Events = list[dict[str, Any]]


class ApiError(Exception):
    """The server refused a request, or could not be reached (`status` 0)."""

    def __init__(self, status: int, body: Any, *, files: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.files = dict(files or {})
        super().__init__(format_body(body, files=self.files))


def format_body(body: Any, *, files: Mapping[str, str] | None = None) -> str:
    """The server's answer as text: a 422's errors one per line (`FILE:LINE: PATH: MESSAGE`, the
    file named as the user gave it when `files` maps the sent name to it), else its detail."""
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        from ir.errors import format_loc

        lines = []
        for e in body["errors"]:
            where = (files or {}).get(e.get("file") or "", e.get("file") or "")
            if e.get("line") is not None:
                where += f":{e['line']}"
            loc = format_loc(tuple(e.get("loc", [])))
            lines.append(f"{where + ': ' if where else ''}{loc}: {e.get('msg')}")
        return "\n".join(lines)
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)


def ir_files(paths: list[Path]) -> tuple[dict[str, str], dict[str, str]]:
    """IR files (folders expanded) as `{absolute path: text}`, so relative paths inside each
    file resolve against its folder on the server as they do for `tekscore render`; and the
    name the user gave each one, by absolute path (for error lines)."""
    import ir

    texts: dict[str, str] = {}
    given: dict[str, str] = {}
    for path in ir.expand_paths(paths):
        absolute = str(path.resolve())
        texts[absolute] = path.read_text(encoding="utf-8")
        given[absolute] = str(path)
    return texts, given


class Client:
    """The API, one method per endpoint the CLI needs."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(
                0, {"detail": f"cannot reach the scheduling server at {self.base_url}: {exc}"}
            ) from exc

    def _json(self, response: httpx.Response, *, files: Mapping[str, str] | None = None) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            raise ApiError(response.status_code, body, files=files)
        return body

    def start(
        self,
        paths: list[Path],
        *,
        parameters: dict[str, str],
        name: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        texts, given = ir_files(paths)
        body: dict[str, Any] = {
            "pipeline": {"files": texts},
            "parameters": parameters,
            "labels": labels or {},
            "base_dir": str(Path.cwd()),
        }
        if name:
            body["name"] = name
        response = self._send("POST", "/api/v1/jobs", json=body)
        result: dict[str, Any] = self._json(response, files=given)
        return result

    def get(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self._send("GET", f"/api/v1/jobs/{job_id}"))
        return result

    def list(self, **params: Any) -> dict[str, Any]:
        query = {k: v for k, v in params.items() if v not in (None, [], "")}
        result: dict[str, Any] = self._json(self._send("GET", "/api/v1/jobs", params=query))
        return result

    def events(self, job_id: str) -> Events:
        result: Events = self._json(self._send("GET", f"/api/v1/jobs/{job_id}/events"))
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        response = self._send("POST", f"/api/v1/jobs/{job_id}/cancel")
        if response.status_code == 409:
            result: dict[str, Any] = response.json()
            return result
        result = self._json(response)
        return result

    def logs(self, job_id: str, *, flow: str | None, service: str | None, tail: int) -> str:
        params: dict[str, Any] = {"tail": tail}
        if flow:
            params["flow"] = flow
        if service:
            params["service"] = service
        response = self._send("GET", f"/api/v1/jobs/{job_id}/logs", params=params)
        if response.status_code >= 400:
            self._json(response)
        return response.text

    def ready(self) -> bool:
        try:
            return self.http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False
