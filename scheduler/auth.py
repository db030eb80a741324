"""Authentication: API bearer tokens, and per-job callback tokens for flows and tasks.

Pure (hmac). A callback token is the HMAC-SHA256 of the job id with the server secret, so it
is good for that one job only and needs no storage; the scheduler hands it to the job's
processes (local launcher env, or a Secret on Kubernetes), never puts it in values or logs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def callback_token(secret: bytes, job_id: str) -> str:
    """The callback token of `job_id`."""
    return hmac.new(secret, f"tekscore-callback:{job_id}".encode(), hashlib.sha256).hexdigest()


def is_callback_token(secret: bytes, job_id: str, token: str) -> bool:
    """Whether `token` is `job_id`'s callback token (constant time)."""
    return hmac.compare_digest(callback_token(secret, job_id), token)


def is_api_token(tokens: Iterable[str], token: str) -> bool:
    """Whether `token` is one of the configured API tokens (constant time per token)."""
    found = False
    for candidate in tokens:
        found |= hmac.compare_digest(candidate.encode(), token.encode())
    return found
