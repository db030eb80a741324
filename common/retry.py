"""The one retry policy of tekscore (tenacity), and the predicate of a transient HTTP failure.

Pure: builds tenacity retryers, does no I/O itself. A `Policy`: the first retry after `first`
seconds, each wait doubling up to `longest`; give up after `attempts` tries and/or `within`
seconds, re-raising the last error (never tenacity's `RetryError`); `on_retry` is told of each
retry (to log it). Callers choose the numbers (a model download, a Kubernetes call, a flow's
completion report) and the predicate; the shape is the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
    wait_exponential,
)
from tenacity.stop import stop_base

RetryOn = Callable[[BaseException], bool]


def transient_http(exc: BaseException) -> bool:
    """An HTTP failure worth retrying: a transport error (connection, timeout) or an answer
    with status 429 or 5xx (raised by `Response.raise_for_status`)."""
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return status >= 500 or status == 429
    return False


@dataclass(frozen=True, kw_only=True)
class Policy:
    """When to retry and how long to wait: `retry_on` says which errors are transient; stop after
    `attempts` tries and/or `within` seconds (at least one of the two); wait `first` seconds
    before the first retry, doubling up to `longest`; `on_retry` is told of each retry."""

    retry_on: RetryOn
    attempts: int | None = None
    within: float | None = None
    first: float = 0.2
    longest: float = 5.0
    on_retry: Callable[[RetryCallState], None] | None = None

    def __post_init__(self) -> None:
        if self.attempts is None and self.within is None:
            raise ValueError("a retry policy needs `attempts` or `within`")

    def _tenacity(self) -> dict[str, Any]:
        stops: list[stop_base] = []
        if self.attempts is not None:
            stops.append(stop_after_attempt(self.attempts))
        if self.within is not None:
            stops.append(stop_after_delay(self.within))
        options: dict[str, Any] = {
            "retry": retry_if_exception(self.retry_on),
            "stop": stop_any(*stops),
            "wait": wait_exponential(multiplier=self.first, max=max(self.first, self.longest)),
            "reraise": True,
        }
        if self.on_retry is not None:
            options["before_sleep"] = self.on_retry
        return options

    def retrying(self) -> AsyncRetrying:
        """An async retryer: `async for attempt in policy.retrying(): with attempt: ...`."""
        return AsyncRetrying(**self._tenacity())

    def retrying_sync(self) -> Retrying:
        """The same for blocking code (a download in a worker thread)."""
        return Retrying(**self._tenacity())
