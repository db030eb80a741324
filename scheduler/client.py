"""A small synchronous client of the scheduling server's API (what the CLI uses).

Does HTTP I/O (httpx). Errors of the server come back as `ApiError` with the status and the
server's message (for 422: every error line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

import ir


class ApiError(Exception):
    """The server refused a request."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{status}: {format_body(body)}")


def format_body(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        lines = []
        for e in body["errors"]:
            where = e.get("file") or ""
            if e.get("line") is not None:
                where += f":{e['line']}"
            loc = ".".join(str(p) for p in e.get("loc", []))
            lines.append(f"{where + ': ' if where else ''}{loc}: {e.get('msg')}")
        return "\n".join(lines)
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)


def ir_files(paths: list[Path]) -> dict[str, str]:
    """IR files (folders expanded) as `{absolute path: text}`: relative paths inside each file
    then resolve against its folder on the server, as they do for `tekscore render`."""
    return {str(p.resolve()): p.read_text(encoding="utf-8") for p in ir.expand_paths(paths)}


class Client:
    """The API, one method per endpoint the CLI needs."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _json(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return body

    def start(
        self,
        paths: list[Path],
        *,
        parameters: dict[str, str],
        name: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "pipeline": {"files": ir_files(paths)},
            "parameters": parameters,
            "labels": labels or {},
            "base_dir": str(Path.cwd()),
        }
        if name:
            body["name"] = name
        result: dict[str, Any] = self._json(self.http.post("/api/v1/jobs", json=body))
        return result

    def get(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self.http.get(f"/api/v1/jobs/{job_id}"))
        return result

    def list(self, **params: Any) -> dict[str, Any]:
        query = {k: v for k, v in params.items() if v not in (None, [], "")}
        result: dict[str, Any] = self._json(self.http.get("/api/v1/jobs", params=query))
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        response = self.http.post(f"/api/v1/jobs/{job_id}/cancel")
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
        response = self.http.get(f"/api/v1/jobs/{job_id}/logs", params=params)
        if response.status_code >= 400:
            self._json(response)
        return response.text

    def ready(self) -> bool:
        try:
            return self.http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False
