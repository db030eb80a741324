"""Where a secret key lives outside Kubernetes: an environment variable, else a file.

Secret `name`, key `key` is the variable `TEKSCORE_SECRET_<NAME>_<KEY>` (upper-cased,
non-alphanumerics as `_`), else the file `<secrets dir>/<name>/<key>` (the folder defaults to
`/var/run/secrets/tekscore`, where the chart mounts Secrets). The flow resolves its `secretRef`s
this way; the local runner looks up the ones a flow names in the server's environment the same
way, to hand each flow only its own. Reads the file only in `secret_value`; never logs a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

DEFAULT_SECRETS_DIR = "/var/run/secrets/tekscore"
SECRETS_DIR_ENV = "TEKSCORE_SECRETS_DIR"
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]")


def env_var_name(name: str, key: str) -> str:
    """The env var that holds secret `name`/`key`: upper-cased, non-alphanumerics as `_`."""
    return "TEKSCORE_SECRET_" + _NON_ALNUM.sub("_", f"{name}_{key}").upper()


def secret_file(name: str, key: str, secrets_dir: str | Path | None) -> Path:
    """The file that holds secret `name`/`key` in `secrets_dir` (default the chart's mount)."""
    return Path(secrets_dir or DEFAULT_SECRETS_DIR) / name / key


def secret_value(
    name: str, key: str, env: Mapping[str, str], secrets_dir: str | Path | None
) -> str | None:
    """The secret's value from `env`, else from its file; None when neither has it. A file's
    trailing line ending is not part of the value."""
    var = env_var_name(name, key)
    if var in env:
        return env[var]
    try:
        return secret_file(name, key, secrets_dir).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError:
        return None
