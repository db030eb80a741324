"""Authentication: API bearer tokens with a role each, and per-job callback tokens.

Pure (hmac). An API token has one role — `read` < `submit` < `admin`, each allowing what the
one before allows (docs/security.md has the table of routes). `TEKSCORE_API_TOKENS` lists them,
comma-separated, as `TOKEN:ROLE`; a `TOKEN` without a role is `admin` (the form before roles
existed keeps its full access). A callback token is the HMAC-SHA256 of the job id with the
server secret, so it is good for that one job only and needs no storage; the scheduler hands it
to the job's processes (local launcher env, or a Secret on Kubernetes), never puts it in values
or logs. Tokens are compared as bytes in constant time (a header may carry any byte).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Mapping


class Role(enum.IntEnum):
    """What an API token may do; a higher role may do everything a lower one may."""

    READ = 1  # see jobs: list, status, events, logs, redacted values
    SUBMIT = 2  # and start, validate and cancel jobs, and read their IR bundle
    ADMIN = 3  # and report for any job's flows (what a job's own callback token may do)

    def __str__(self) -> str:
        return self.name.lower()


class TokenSyntaxError(ValueError):
    """`TEKSCORE_API_TOKENS` does not parse; the message never quotes a token."""


def parse_tokens(value: str) -> dict[str, Role]:
    """`TOKEN[:ROLE],...` as {token: role}; raises TokenSyntaxError naming the entry by number."""
    tokens: dict[str, Role] = {}
    for number, entry in enumerate(value.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        token, sep, role = entry.rpartition(":")
        if not sep:
            token, role = entry, "admin"
        try:
            parsed = Role[role.strip().upper()]
        except KeyError:
            raise TokenSyntaxError(
                f"TEKSCORE_API_TOKENS entry {number}: unknown role {role.strip()!r} "
                f"(TOKEN:ROLE with ROLE one of {', '.join(str(r) for r in Role)}, or TOKEN alone "
                "for admin)"
            ) from None
        token = token.strip()
        if not token:
            raise TokenSyntaxError(f"TEKSCORE_API_TOKENS entry {number}: the token is empty")
        if token in tokens and tokens[token] != parsed:
            raise TokenSyntaxError(
                f"TEKSCORE_API_TOKENS entry {number}: the same token with two roles"
            )
        tokens[token] = parsed
    return tokens


def callback_token(secret: bytes, job_id: str) -> str:
    """The callback token of `job_id`."""
    return hmac.new(secret, f"tekscore-callback:{job_id}".encode(), hashlib.sha256).hexdigest()


def _bytes(token: str) -> bytes:
    return token.encode("utf-8", "surrogateescape")


def is_callback_token(secret: bytes, job_id: str, token: str) -> bool:
    """Whether `token` is `job_id`'s callback token (constant time)."""
    return hmac.compare_digest(callback_token(secret, job_id).encode(), _bytes(token))


def role_of(tokens: Mapping[str, Role], token: str) -> Role | None:
    """The role of `token` among the configured API tokens, or None (constant time per token)."""
    given = _bytes(token)
    found: Role | None = None
    for candidate, role in tokens.items():
        if hmac.compare_digest(_bytes(candidate), given):
            found = role
    return found
