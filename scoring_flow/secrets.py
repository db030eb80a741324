"""Resolution of `secretRef`s: env var first, then a mounted file; values are never logged.

Reads `os.environ` and files under `$TEKSCORE_SECRETS_DIR` (default `/var/run/secrets/tekscore`).
`{secretRef: {name: s3-creds, key: access-key}}` resolves from env var
`TEKSCORE_SECRET_S3_CREDS_ACCESS_KEY` or else file `<dir>/s3-creds/access-key`
(`common.secrets` says where a key lives).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from common.secrets import SECRETS_DIR_ENV, env_var_name, secret_file, secret_value
from ir.types import SecretRef
from scoring_flow.errors import SecretError

__all__ = ["env_var_name", "resolve_optional", "resolve_secret"]


def resolve_secret(ref: SecretRef, env: Mapping[str, str] | None = None) -> str:
    """The secret's value, from the environment or the secrets folder."""
    env = os.environ if env is None else env
    name, key = ref.secret_ref.name, ref.secret_ref.key
    folder = env.get(SECRETS_DIR_ENV)
    value = secret_value(name, key, env, folder)
    if value is None:
        raise SecretError(
            name=name,
            key=key,
            env_var=env_var_name(name, key),
            path=str(secret_file(name, key, folder)),
        )
    return value


def resolve_optional(ref: SecretRef | None, env: Mapping[str, str] | None = None) -> str | None:
    """`resolve_secret` when a reference is given, else None."""
    return None if ref is None else resolve_secret(ref, env)
