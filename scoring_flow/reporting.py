"""Reports to the scheduler: progress every few seconds and completion at the end.

Does network I/O (httpx) when `TEKSCORE_CALLBACK_URL` is set; otherwise only logs. Requests:
`POST {url}/api/v1/jobs/{job}/flows/{flow}/progress|complete` with `Authorization: Bearer
<TEKSCORE_CALLBACK_TOKEN>` and the body `report_body(...)`. Completion is retried with
exponential backoff (tenacity) for up to a minute (`TEKSCORE_COMPLETION_RETRY_SECONDS`); then
the flow's termination record, with its final counters, is what the scheduler reads after a
restart. Progress is best effort (the next tick carries newer numbers anyway).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog

from common.retry import Policy
from scoring_flow.config import RuntimeSettings
from scoring_flow.items import Counters

log = structlog.get_logger("scoring_flow.reporting")


def report_body(
    counters: Counters, *, shard: int, shards: int, error: str | None, **identity: int | str
) -> dict[str, Any]:
    """The JSON body of a progress or completion report: this process's own counters and who it
    is (its shard; `replica`, its index, or `pod`, its name, when it has one): the scheduler
    sums the flow's processes."""
    return {**counters.as_dict(), "shard": shard, "shards": shards, **identity, "error": error}


class _Rejected(Exception):
    """The scheduler answered with a status worth retrying."""


def _rejected(exc: BaseException) -> bool:
    return isinstance(exc, _Rejected)


class Reporter:
    """Sends the flow's reports; use as `async with Reporter(...)`."""

    def __init__(
        self,
        *,
        settings: RuntimeSettings,
        flow: str,
        shards: int,
        counters: Counters,
        complete_budget: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.flow = flow
        self.shards = shards
        self.counters = counters
        self.complete_budget = complete_budget
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Reporter:
        if self.settings.callback_url:
            headers = {}
            if self.settings.callback_token:
                headers["Authorization"] = f"Bearer {self.settings.callback_token}"
            # TLS only for an https callback URL (the local runner's is plain HTTP on loopback):
            # loading the CA bundle is on the start-up path of every flow process
            tls = self.settings.callback_url.lower().startswith("https:")
            self._client = httpx.AsyncClient(
                timeout=10.0, headers=headers, transport=self._transport, verify=tls
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _url(self, what: str) -> str:
        return (
            f"{self.settings.callback_url}/api/v1/jobs/{self.settings.job_id}"
            f"/flows/{self.flow}/{what}"
        )

    def _body(self, error: str | None) -> dict[str, Any]:
        return report_body(
            self.counters,
            shard=self.settings.shard_index,
            shards=self.shards,
            error=error,
            **self.settings.identity(),
        )

    async def _post(self, what: str, body: dict[str, Any]) -> None:
        assert self._client is not None
        try:
            response = await self._client.post(self._url(what), json=body)
        except httpx.HTTPError as exc:
            raise _Rejected(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise _Rejected(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            log.warning("report refused", what=what, status=response.status_code)

    async def progress(self) -> None:
        """One progress report (logged in standalone mode)."""
        body = self._body(None)
        log.info("flow progress", **{k: v for k, v in body.items() if k != "error"})
        if self._client is None:
            return
        try:
            await self._post("progress", body)
        except _Rejected as exc:
            log.warning("progress report failed", reason=str(exc))

    async def progress_loop(self) -> None:
        """Report progress every interval until cancelled."""
        while True:
            await asyncio.sleep(self.settings.progress_interval)
            await self.progress()

    async def complete(self, error: str | None) -> bool:
        """Report completion (retried); whether the scheduler got it (True when standalone)."""
        body = self._body(error)
        if self._client is None:
            return True
        try:
            policy = Policy(
                retry_on=_rejected, attempts=12, within=self.complete_budget, longest=10.0
            )
            async for attempt in policy.retrying():
                with attempt:
                    await self._post("complete", body)
        except _Rejected as exc:
            log.error("completion report failed", reason=str(exc))
            return False
        log.info("completion reported")
        return True
