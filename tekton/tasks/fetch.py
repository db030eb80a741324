"""The first half of the install task, shared by both backends: download the job bundle from
the scheduler and pre-process it, checking the result against the hash the scheduler computed.

Does HTTP I/O (httpx, retried with tenacity on transport errors and 5xx answers).
"""

from __future__ import annotations

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

import ir
from common.task_errors import TaskFailed
from ir.bundle import JobBundle, render_bundle


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500


async def fetch_bundle(
    *, scheduler_url: str, job_id: str, token: str | None, attempts: int = 6
) -> JobBundle:
    """`GET {scheduler}/api/v1/jobs/{id}/ir` with the job's callback token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{scheduler_url.rstrip('/')}/api/v1/jobs/{job_id}/ir"
    try:
        async with httpx.AsyncClient(timeout=30.0, headers=headers) as client:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_transient),
                stop=stop_after_attempt(attempts),
                wait=wait_exponential(multiplier=0.2, max=5),
                reraise=True,
            ):
                with attempt:
                    response = await client.get(url)
                    response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        raise TaskFailed(
            "InstallFailed",
            f"the scheduler answered {exc.response.status_code} for the job's IR at {url}: "
            f"{exc.response.text[:500]}",
        ) from exc
    except httpx.TransportError as exc:
        raise TaskFailed("InstallFailed", f"cannot reach the scheduler at {url}: {exc}") from exc
    return JobBundle.model_validate_json(response.content)


def render_checked(bundle: JobBundle) -> ir.Rendered:
    """Pre-process the bundle; the result must hash as the scheduler's did."""
    try:
        rendered = render_bundle(bundle)
    except ir.IRValidationError as exc:
        raise TaskFailed("InvalidIR", str(exc)) from exc
    if bundle.content_hash and rendered.content_hash != bundle.content_hash:
        raise TaskFailed(
            "IRChanged",
            f"pre-processing gave contentHash {rendered.content_hash}, the scheduler computed "
            f"{bundle.content_hash}: the IR or its referenced files changed since the job started",
        )
    return rendered
