"""Resolution of `secretRef`s: env var first, then a mounted file; values are never logged.

Reads `os.environ` and files under `$TEKSCORE_SECRETS_DIR` (default `/var/run/secrets/tekscore`).
`{secretRef: {name: s3-creds, key: access-key}}` resolves from env var
`TEKSCORE_SECRET_S3_CREDS_ACCESS_KEY` or else file `<dir>/s3-creds/access-key`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from ir.types import SecretRef
from scoring_flow.errors import SecretError

DEFAULT_SECRETS_DIR = "/var/run/secrets/tekscore"
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]")


def env_var_name(name: str, key: str) -> str:
    """The env var that holds secret `name`/`key`: upper-cased, non-alphanumerics as `_`."""
    return "TEKSCORE_SECRET_" + _NON_ALNUM.sub("_", f"{name}_{key}").upper()


def resolve_secret(ref: SecretRef, env: Mapping[str, str] | None = None) -> str:
    """The secret's value, from the environment or the secrets folder."""
    env = os.environ if env is None else env
    name, key = ref.secret_ref.name, ref.secret_ref.key
    var = env_var_name(name, key)
    if var in env:
        return env[var]
    path = Path(env.get("TEKSCORE_SECRETS_DIR") or DEFAULT_SECRETS_DIR) / name / key
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError:
        raise SecretError(name=name, key=key, env_var=var, path=str(path)) from None


def resolve_optional(ref: SecretRef | None, env: Mapping[str, str] | None = None) -> str | None:
    """`resolve_secret` when a reference is given, else None."""
    return None if ref is None else resolve_secret(ref, env)
