"""The first half of the Kubernetes install task: download the job bundle from the scheduler
and pre-process it, checking the result against the hash the scheduler computed (a check of
transport: the local backend's install takes the values rendered at start, in-process).

Does HTTP I/O (httpx, retried with tenacity on transport errors and 5xx answers).
"""

from __future__ import annotations

import httpx

import ir
from common.retry import Policy, transient_http
from common.task_errors import TaskFailed
from ir.bundle import JobBundle, render_bundle


async def fetch_bundle(
    *,
    scheduler_url: str,
    job_id: str,
    token: str | None,
    attempts: int = 6,
    transport: httpx.AsyncBaseTransport | None = None,
) -> JobBundle:
    """`GET {scheduler}/api/v1/jobs/{id}/ir` with the job's callback token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{scheduler_url.rstrip('/')}/api/v1/jobs/{job_id}/ir"
    try:
        async with httpx.AsyncClient(timeout=30.0, headers=headers, transport=transport) as client:
            async for attempt in Policy(retry_on=transient_http, attempts=attempts).retrying():
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
