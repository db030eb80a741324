"""Settings of the scheduling server: from flags, then `TEKSCORE_*` environment variables.

No I/O at import; `Settings.secret_bytes()` reads or creates the callback-signing secret under
the home folder when `TEKSCORE_SECRET` is not set. Validation errors never quote the input
(it holds the API tokens and the secret).
"""

from __future__ import annotations

import functools
import ipaddress
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ir.access import Access
from scheduler.auth import Role, parse_tokens


def default_home() -> Path:
    """`$TEKSCORE_HOME`, else `~/.tekscore`."""
    return Path(os.environ.get("TEKSCORE_HOME") or Path.home() / ".tekscore")


class Settings(BaseSettings):
    """Everything the server is configured with; one instance per app, built in `create_app`."""

    model_config = SettingsConfigDict(
        env_prefix="TEKSCORE_", extra="ignore", hide_input_in_errors=True
    )

    home: Path = Field(default_factory=default_home)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    backend: Literal["local", "tekton"] = "local"
    channels: Path | None = Field(default=None, description="Channel registry folder.")
    globals_file: Path | None = Field(default=None, alias="TEKSCORE_GLOBALS")
    api_tokens: str = Field(
        default="",
        description="Bearer tokens for the API: comma-separated TOKEN:ROLE (read, submit, admin); "
        "a TOKEN alone is admin.",
    )
    secret: str = Field(default="", description="Callback-signing secret; generated when empty.")
    public_url: str | None = Field(
        default=None, description="Base URL flows and tasks use to reach this server."
    )
    grace_period: float = Field(default=10.0, gt=0, description="SIGTERM -> SIGKILL, seconds.")
    ready_timeout: float = Field(default=120.0, gt=0, description="Scoring services to be ready.")
    namespace: str = "tekscore"
    log_level: str = "info"
    # The tekton backend (`--backend tekton`): where and how a job's PipelineRun runs.
    task_service_account: str = Field(
        default="tekscore-task", description="taskRunTemplate.serviceAccountName of each run."
    )
    pipeline: str = Field(
        default="tekscore-scoring-job", description="The Pipeline each PipelineRun references."
    )
    chart_path: str = Field(
        default="/app/charts/scoring-pipeline",
        description="The scoring-pipeline chart inside the image (the Pipeline's `chart` param).",
    )
    pipeline_timeout: float = Field(
        default=0.0,
        ge=0,
        description="timeouts.pipeline of each PipelineRun, seconds; 0 = none (all timeouts "
        '"0": streaming jobs run until cancelled).',
    )
    finally_timeout: float = Field(
        default=900.0,
        gt=0,
        description="timeouts.finally, seconds, when pipeline_timeout is set (must be below it).",
    )

    wait_taskrun_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a completion looks for the wait TaskRun before cancelling the whole "
        "PipelineRun (CancelledRunFinally) instead.",
    )

    # limits of one request and one job (docs/security.md): refused with 413 or 422
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Largest request body, bytes."
    )
    max_documents: int = Field(default=500, ge=1, description="IR documents in one request.")
    max_flows: int = Field(default=32, ge=1, description="Scoring flows of one job.")
    max_shards: int = Field(default=32, ge=1, description="Shards of one batch flow.")
    max_replicas: int = Field(
        default=16, ge=1, description="Replicas of one streaming flow or scoring service."
    )
    max_processes: int = Field(
        default=64,
        ge=1,
        description="Processes (pods) of one job: every flow's shards or replicas, and every "
        "scoring service's replicas (but external ones).",
    )

    # what a job may touch (docs/security.md): checked at pre-processing, held by the sandbox
    data_roots: Annotated[list[Path] | None, NoDecode] = Field(
        default=None,
        description="Folders a job's files may be in (`:`-separated in the environment). Unset: "
        "none on the local backend, no rule on the tekton backend (pods see their volumes).",
    )
    code_sources: Annotated[list[str] | None, NoDecode] = Field(
        default=None,
        description="Where python models, pickles and python steps may load from: folders and "
        "http(s):// or s3:// URL prefixes (comma-separated in the environment). Unset: none on "
        "the local backend, no rule on the tekton backend.",
    )
    allow_bind: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses besides loopback an http source may listen on (comma-separated).",
    )
    secret_allow: str = Field(
        default="",
        description="SELECTOR=secret,secret;... (selector: a pipeline name, a job label KEY:VALUE "
        "or *): the secrets a pipeline may name. Unset: any.",
    )
    child_env: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Names of server environment variables every job process also gets "
        "(comma-separated), e.g. AWS_REGION,HTTPS_PROXY.",
    )
    secrets_dir: Path | None = Field(
        default=None,
        description="Folder of secret files <name>/<key> for secretRefs (local backend), besides "
        "TEKSCORE_SECRET_<NAME>_<KEY> variables.",
    )
    sandbox: Literal["required", "auto", "off"] = Field(
        default="auto",
        description="Run local job processes in bubblewrap: required (refuse to start without "
        "bwrap), auto (when present), off.",
    )
    max_running_jobs: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Jobs running at once on the local backend; more wait PENDING, oldest first.",
    )
    preprocess_workers: int = Field(
        default=1,
        ge=0,
        le=64,
        description="Worker processes pre-processing start and validate requests off the "
        "server's event loop; 0: in a thread of the server.",
    )
    max_server_processes: int = Field(
        default=128,
        ge=1,
        description="Processes of all running jobs together on the local backend (flows' shards "
        "and replicas, scoring services); a job that does not fit waits PENDING.",
    )
    warm_runtimes: int = Field(
        default=2,
        ge=0,
        le=16,
        description="Warm spares on the local backend: processes started ahead of need, the "
        "python runtime imported, in the sandbox a job gets, that the next job's processes are "
        "handed to (each spare serves one job only); 0 turns them off.",
    )

    job_nice: int = Field(
        default=10,  # local_runner.priority.JOB_NICE (the job service's layer imports no runner)
        ge=0,
        le=19,
        description="CPU priority (nice value) of job processes on the local backend, of their "
        "sessions' autogroups too: the server answers while jobs keep every core busy; 0 runs "
        "them at the server's priority.",
    )

    @field_validator("data_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        return [p for p in value.split(":") if p] if isinstance(value, str) else value

    @field_validator("code_sources", "allow_bind", "child_env", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        return (
            [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value
        )

    @model_validator(mode="after")
    def _access_syntax(self) -> Settings:
        self.access()  # a ValueError names the bad data root, code source or allow-list entry
        return self

    @field_validator("api_tokens", mode="after")
    @classmethod
    def _token_syntax(cls, value: str) -> str:
        parse_tokens(value)  # TokenSyntaxError (a ValueError) names the entry, not the token
        return value

    @model_validator(mode="after")
    def _timeouts(self) -> Settings:
        if self.pipeline_timeout and self.finally_timeout >= self.pipeline_timeout:
            raise ValueError(
                "finally_timeout must be below pipeline_timeout (TEKTON.md: pipeline >= "
                "tasks + finally)"
            )
        return self

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    def access(self) -> Access:
        """The rules pre-processing checks each job against (`ir.access`). The local backend
        allows nothing unconfigured and never the home folder; the tekton backend has no file
        or code rule unless one is configured (its jobs are pods)."""
        local = self.backend == "local"
        roots = self.data_roots if self.data_roots is not None else ([] if local else None)
        code = self.code_sources if self.code_sources is not None else ([] if local else None)
        return Access.build(
            data_roots=roots,
            code_sources=code,
            home=self.home if local else None,
            allow_bind=self.allow_bind,
            secret_allow=self.secret_allow,
        )

    def tokens(self) -> Mapping[str, Role]:
        """The API bearer tokens and their roles; empty means no auth (and loopback only)."""
        return _parse_tokens(self.api_tokens)

    def secret_bytes(self) -> bytes:
        """The callback-signing secret: `TEKSCORE_SECRET`, else `$home/secret` (created 0600)."""
        if self.secret:
            return self.secret.encode()
        path = self.home / "secret"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return path.read_text().strip().encode()

    def base_url(self) -> str:
        """Where children reach this server (`public_url`, else http://host:port)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


@functools.lru_cache(maxsize=8)
def _parse_tokens(value: str) -> Mapping[str, Role]:
    return MappingProxyType(parse_tokens(value))


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
