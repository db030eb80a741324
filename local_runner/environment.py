"""The environment of a job's processes: built from nothing, never inherited whole.

Pure (it reads the mappings it is given; `ChildEnv.secrets` reads secret files through
`common.secrets`). A child gets `PATH`, the locale (`LANG`, `LANGUAGE`, `LC_*`), `TZ`, `HOME` and
`TMPDIR` (its job's private folder), the runtime knobs the children read that an operator sets
for every job (`TEKSCORE_PROGRESS_INTERVAL`, `TEKSCORE_READY_TIMEOUT`,
`TEKSCORE_COMPLETION_RETRY_SECONDS`, `TEKSCORE_S3_ENDPOINT_URL`, `TEKSCORE_VENV_CACHE` and pip's
index settings for a python model's requirements), the variables the operator
names (`TEKSCORE_CHILD_ENV`), and what the installer adds per process (log settings, its
termination record, for flows their job id, callback URL and token, and the secrets their
pipeline names). Nothing else of the server's: never its API tokens, its signing secret or other
secrets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from common.secrets import env_var_name, secret_value

PASSED = (
    "PATH", "LANG", "LANGUAGE", "TZ",
    "TEKSCORE_PROGRESS_INTERVAL", "TEKSCORE_READY_TIMEOUT", "TEKSCORE_COMPLETION_RETRY_SECONDS",
    "TEKSCORE_S3_ENDPOINT_URL", "TEKSCORE_VENV_CACHE",
    "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_TRUSTED_HOST",
)  # fmt: skip
"""Passed when the server has them: the locale, and the knobs of the children's own runtime (a
python model's requirements: the shared environment cache, where pip finds packages)."""
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
NEVER = frozenset({"TEKSCORE_API_TOKENS", "TEKSCORE_SECRET"})
"""Never passed on, even when an operator names them in `TEKSCORE_CHILD_ENV`."""


def never_passed(name: str) -> bool:
    """The server's own credentials: API tokens, the signing secret, every stored secret."""
    return name in NEVER or name.startswith("TEKSCORE_SECRET_")


@dataclass(frozen=True)
class ChildEnv:
    """What the server's environment lends its jobs' processes."""

    source: Mapping[str, str]
    names: tuple[str, ...] = ()
    secrets_dir: str | None = None

    def base(self, private: Path) -> dict[str, str]:
        """The variables every process of a job starts with; `private` is its HOME and TMPDIR."""
        env = {k: v for k, v in self.source.items() if k in PASSED or k.startswith("LC_")}
        env.setdefault("PATH", DEFAULT_PATH)
        for name in self.names:
            if name in self.source and not never_passed(name):
                env[name] = self.source[name]
        env["HOME"] = env["TMPDIR"] = str(private)
        return env

    def secrets(self, refs: Iterable[Mapping[str, str]]) -> tuple[dict[str, str], list[str]]:
        """The variables of the secret keys `refs` (`{name, key}`) names, and the `name/key`
        of each the server does not have."""
        env: dict[str, str] = {}
        missing: list[str] = []
        for ref in refs:
            name, key = ref["name"], ref["key"]
            value = secret_value(name, key, self.source, self.secrets_dir)
            if value is None:
                missing.append(f"{name}/{key}")
            else:
                env[env_var_name(name, key)] = value
        return env, missing
