"""HTTP client of scoring services: readiness, the records endpoint, and OIP V2 infer.

Does network I/O (created by the caller's `async with`, never at import): readiness and metadata
through an httpx.AsyncClient with keep-alive; score POSTs to plain-http services through
`http1.Http1Pool` (the hot path), to others through httpx's transport. `score` answers one entry
per sent record, in order: a result object, a list of 0..n result objects, `{"$error": reason}`
(the service refused that record), or the `ScoringError` of a call that failed for that record.
Failure handling:

- 5xx, 429, timeouts, connection errors: retried `max_retries` times with exponential backoff
  (tenacity), then every record of the batch gets the `RetriableScoringError`;
- 400/413/422 on a batch: the records are sent one by one so only the bad ones fail;
- any other 4xx, or an answer of the wrong shape: every record of the batch fails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from types import TracebackType
from typing import Any

import httpx
import orjson
import structlog

from common.retry import Policy
from ir.values import ServiceEndpoint
from scoring_flow import oip
from scoring_flow.config import endpoint_url
from scoring_flow.errors import (
    PermanentScoringError,
    RetriableScoringError,
    ScoringError,
    ServiceNotReadyError,
)
from scoring_flow.http1 import Http1Error, Http1Pool, supports
from scoring_flow.types import Record

log = structlog.get_logger("scoring_flow.scoring")

ISOLATE_STATUSES = frozenset({400, 413, 422})
_JSON = {"content-type": "application/json"}


def _error_text(content: bytes, reason: str) -> str:
    text = content[:300].decode("utf-8", "replace")
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return text or reason
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return text


def _check(status: int, content: bytes, reason: str) -> Any:
    if status == 200:
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise PermanentScoringError(f"the answer is not JSON: {exc}", status=status) from exc
    detail = f"HTTP {status}: {_error_text(content, reason)}"
    if status >= 500 or status == 429:
        raise RetriableScoringError(detail, status=status)
    raise PermanentScoringError(detail, status=status)


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, RetriableScoringError)


class ScoringClient:
    """Talks to the scoring services a flow uses; use as `async with ScoringClient(...)`."""

    def __init__(
        self,
        services: dict[str, ServiceEndpoint],
        *,
        timeout: float,
        max_retries: int,
        max_connections: int = 16,
        backoff_max: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.services = services
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_max = backoff_max
        self._max_connections = max_connections
        self._client: httpx.AsyncClient | None = None
        self._given = transport  # a test's httpx.MockTransport; else a keep-alive pool
        self._transport: httpx.AsyncBaseTransport | None = None
        self._timeouts = httpx.Timeout(timeout).as_dict()
        self._metadata: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._fast: Http1Pool | None = None  # the POSTs to plain-http services

    async def __aenter__(self) -> ScoringClient:
        # TLS only when a service is called over https: loading the CA bundle costs 25 ms idle,
        # up to 0.25 s on a busy machine, on the start-up path of every flow process, and the
        # services of a local job are plain HTTP on loopback
        tls = any((e.url or "").lower().startswith("https:") for e in self.services.values())
        self._transport = self._given or httpx.AsyncHTTPTransport(
            verify=tls,
            limits=httpx.Limits(
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_connections,
            ),
        )
        self._client = httpx.AsyncClient(transport=self._transport, timeout=self.timeout)
        if self._given is None:
            self._fast = Http1Pool(max_connections=self._max_connections)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._fast is not None:
            await self._fast.aclose()
            self._fast = None

    @property
    def client(self) -> httpx.AsyncClient:
        """The open HTTP client."""
        if self._client is None:
            raise RuntimeError("ScoringClient used outside `async with`")
        return self._client

    # ------------------------------------------------------------ readiness

    async def wait_ready(self, *, budget: float) -> None:
        """Wait until every service answers 200 on `/v2/health/ready`, at most `budget` seconds
        in total (tenacity, exponential backoff up to 2 s between polls)."""
        deadline = time.monotonic() + budget
        for name, endpoint in sorted(self.services.items()):
            await self._wait_one(name, endpoint, max(deadline - time.monotonic(), 0.1))

    async def _wait_one(self, name: str, endpoint: ServiceEndpoint, budget: float) -> None:
        url = endpoint_url(endpoint) + "/v2/health/ready"
        last = "no answer yet"
        started = time.monotonic()
        policy = Policy(retry_on=_retriable, within=budget, first=0.05, longest=0.1)
        try:
            async for attempt in policy.retrying():
                with attempt:
                    try:
                        response = await self.client.get(url, timeout=min(self.timeout, 5.0))
                    except httpx.HTTPError as exc:
                        last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                        raise RetriableScoringError(last) from exc
                    if response.status_code != 200:
                        last = f"HTTP {response.status_code}{_said(response)}"
                        raise RetriableScoringError(last, status=response.status_code)
        except RetriableScoringError as exc:
            raise ServiceNotReadyError(
                service=name,
                url=endpoint_url(endpoint),
                waited=time.monotonic() - started,
                last=last,
            ) from exc
        log.info("service ready", service=name, url=endpoint_url(endpoint))

    # ------------------------------------------------------------ scoring

    async def score(self, *, service: str, model: str, payloads: list[Record]) -> list[Any]:
        """One answer per payload, in order (see the module docstring)."""
        if not payloads:
            return []
        endpoint = self.services[service]
        call = self._records if endpoint.protocol == "records" else self._infer
        try:
            return await self._retrying(lambda: call(endpoint, service, model, payloads))
        except PermanentScoringError as exc:
            if (exc.status in ISOLATE_STATUSES or exc.status is None) and len(payloads) > 1:
                return await self._one_by_one(call, endpoint, service, model, payloads)
            return [exc] * len(payloads)
        except RetriableScoringError as exc:
            return [self._gave_up(exc)] * len(payloads)

    async def _one_by_one(
        self,
        call: Callable[[ServiceEndpoint, str, str, list[Record]], Awaitable[list[Any]]],
        endpoint: ServiceEndpoint,
        service: str,
        model: str,
        payloads: list[Record],
    ) -> list[Any]:
        answers: list[Any] = []
        for payload in payloads:
            try:
                answers.extend(
                    await self._retrying(partial(call, endpoint, service, model, [payload]))
                )
            except RetriableScoringError as exc:
                answers.append(self._gave_up(exc))
            except ScoringError as exc:
                answers.append(exc)
        return answers

    def _gave_up(self, exc: RetriableScoringError) -> RetriableScoringError:
        """The failure of a call retried `max_retries` times, saying so."""
        return RetriableScoringError(
            f"{exc.detail} (gave up after {self.max_retries} retries)", status=exc.status
        )

    async def _retrying(self, fn: Callable[[], Awaitable[list[Any]]]) -> list[Any]:
        """The first attempt directly (the hot path), then up to `max_retries` more with
        exponential backoff (tenacity) while the failure is retriable."""
        try:
            return await fn()
        except RetriableScoringError as exc:
            if not self.max_retries:
                raise
            log.warning("scoring retry", attempt=2, reason=exc.detail)
        await asyncio.sleep(0.1)
        policy = Policy(retry_on=_retriable, attempts=self.max_retries, longest=self.backoff_max)
        async for attempt in policy.retrying():
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    log.warning("scoring retry", attempt=attempt.retry_state.attempt_number + 1)
                return await fn()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(self, url: str, body: Any) -> Any:
        """POST JSON: to a plain-http service through `Http1Pool` (httpx's layers cost as much
        CPU as the model on this path, docs/benchmarks.md), else through httpx's keep-alive
        transport directly (the client's per-request layers are not needed)."""
        content = orjson.dumps(body)
        if self._fast is not None and supports(url):
            try:
                async with asyncio.timeout(self.timeout):
                    answer = await self._fast.post(url, content)
            except TimeoutError as exc:
                raise RetriableScoringError(f"timed out after {self.timeout}s") from exc
            except (OSError, asyncio.IncompleteReadError, Http1Error) as exc:
                raise RetriableScoringError(f"{type(exc).__name__}: {exc}") from exc
            return _check(answer.status, answer.body, answer.reason)
        transport = self._transport
        if transport is None:
            raise RuntimeError("ScoringClient used outside `async with`")
        request = httpx.Request(
            "POST", url, content=content, headers=_JSON, extensions={"timeout": self._timeouts}
        )
        try:
            response = await transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise RetriableScoringError(f"timed out after {self.timeout}s") from exc
        except httpx.HTTPError as exc:
            raise RetriableScoringError(f"{type(exc).__name__}: {exc}") from exc
        return _check(response.status_code, response.content, response.reason_phrase)

    async def _records(
        self, endpoint: ServiceEndpoint, service: str, model: str, payloads: list[Record]
    ) -> list[Any]:
        url = f"{endpoint_url(endpoint)}/v2/models/{model}/records"
        answer = await self._post(url, payloads)
        if not isinstance(answer, list) or len(answer) != len(payloads):
            got = len(answer) if isinstance(answer, list) else type(answer).__name__
            raise PermanentScoringError(
                f"the service answered {got} results for {len(payloads)} records"
            )
        return answer

    async def _infer(
        self, endpoint: ServiceEndpoint, service: str, model: str, payloads: list[Record]
    ) -> list[Any]:
        base = f"{endpoint_url(endpoint)}/v2/models/{model}"
        key = (service, model)
        if key not in self._metadata:
            self._metadata[key] = await self._read_metadata(base)
        try:
            body = oip.infer_request(payloads, self._metadata[key])
        except (KeyError, ValueError, TypeError) as exc:
            raise PermanentScoringError(f"cannot build the infer request: {exc!r}") from exc
        answer = await self._post(base + "/infer", body)
        if not isinstance(answer, dict):
            raise PermanentScoringError("the infer answer is not an object")
        try:
            return list(oip.infer_rows(answer, len(payloads)))
        except (KeyError, ValueError, TypeError) as exc:
            raise PermanentScoringError(f"cannot read the infer answer: {exc!r}") from exc

    async def _read_metadata(self, base: str) -> dict[str, Any] | None:
        try:
            response = await self.client.get(base)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        try:
            meta = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return None
        return meta if isinstance(meta, dict) else None


def _said(response: httpx.Response) -> str:
    """`: <error>` of a JSON error answer (a service not ready says why), else nothing."""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return f": {error}" if isinstance(error, str) and error else ""
