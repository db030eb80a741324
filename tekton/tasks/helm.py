"""Helm for the Kubernetes install and finally tasks: `helm upgrade --install` and `helm uninstall`
of the scoring-pipeline chart through pyhelm3 (the Kubernetes counterpart of `LocalInstaller`).

Does I/O: pyhelm3 runs the helm binary, which talks to the Kubernetes API. `go_duration` is pure.

Install is `helm upgrade --install <release> <chart> -n <ns> --wait --timeout <t>` with
`--rollback-on-failure` (helm v4's name of `--atomic`) and the values on stdin. Two deliberate
differences from pyhelm3's defaults, both in `JobHelmCommand`/`HelmInstaller`:

- no `--wait-for-jobs`: pyhelm3 always adds it with `wait=True`, which would make install wait
  until every batch flow has *finished* (and roll the release back when a flow fails or outlives
  the install timeout). Install waits until services are ready and Jobs have started; deciding
  when scoring is over is the wait task's job;
- no `--create-namespace`: the jobs namespace exists (the platform chart's contract) and the task
  ServiceAccount has no right to create namespaces, which helm would try and fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog
from pyhelm3 import Client, Command
from pyhelm3 import errors as helm_errors

from common.task_errors import TaskFailed

_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_MESSAGE_LIMIT = 2000


def go_duration(value: str, *, name: str) -> str:
    """`value` when it is a Go duration helm accepts (`10m`, `1h30m`, `90s`); else `TaskFailed`."""
    if value == "0" or _DURATION.match(value):
        return value
    raise TaskFailed("InstallFailed", f"{name} {value!r} is not a Go duration such as 10m or 90s.")


def helm_message(exc: helm_errors.Error) -> str:
    """helm's stderr as one line (whitespace collapsed, cut to a readable length)."""
    text = " ".join(exc.stderr.decode("utf-8", "replace").split()) or f"exit code {exc.returncode}"
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


class JobHelmCommand(Command):  # type: ignore[misc]  # pyhelm3 is untyped
    """pyhelm3's `Command`, minus `--wait-for-jobs` (see the module docstring)."""

    async def run(self, command: list[Any], input: bytes | None = None) -> bytes:
        return await self.run_helm([part for part in command if part != "--wait-for-jobs"], input)

    async def run_helm(self, command: Sequence[Any], input: bytes | None) -> bytes:
        """Run helm with these arguments (the only place a helm process is started).

        Unlike pyhelm3's `Command.run` (which starts `sh -c "helm ..."` and, when cancelled,
        terminates only the shell and then waits for helm to end by itself, up to its
        `--timeout`), helm runs without a shell in its own process group, which a cancel
        terminates at once: the install task cancels helm when the release shows a real error.
        """
        args = [self._executable, *(str(part) for part in command)]
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE if input is not None else None,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = await proc.communicate(input)
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            raise
        if proc.returncode == 0:
            return stdout
        raise _helm_error(proc.returncode or 1, stdout, stderr)


def _helm_error(code: int, stdout: bytes, stderr: bytes) -> helm_errors.Error:
    """pyhelm3's error class for helm's stderr (the ones the tasks tell apart)."""
    text = stderr.decode("utf-8", "replace").lower()
    if "context canceled" in text:
        kind = helm_errors.CommandCancelledError
    elif "release: not found" in text:
        kind = helm_errors.ReleaseNotFoundError
    elif "failed to render chart" in text or "execution error" in text:
        kind = helm_errors.FailedToRenderChartError
    else:
        kind = helm_errors.Error
    error: helm_errors.Error = kind(code, stdout, stderr)
    return error


def make_client(*, executable: str = "helm", command: Command | None = None) -> Client:
    """A pyhelm3 client over `JobHelmCommand` (or the given command); `TaskFailed` without helm."""
    try:
        return Client(command or JobHelmCommand(executable=executable), executable=executable)
    except AssertionError as exc:  # pyhelm3 asserts that the executable exists
        raise TaskFailed(
            "InstallFailed", f"The helm executable {executable!r} is missing."
        ) from exc
    except OSError as exc:
        raise TaskFailed("InstallFailed", f"helm {executable!r} cannot run: {exc}") from exc


class HelmInstaller:
    """Install and uninstall one job's release of the scoring-pipeline chart."""

    def __init__(
        self,
        *,
        client: Client,
        job_id: str,
        release: str,
        namespace: str,
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.release = release
        self.namespace = namespace
        self._log: structlog.typing.FilteringBoundLogger = structlog.get_logger(
            "tekton.tasks.helm"
        ).bind(job_id=job_id, release=release, namespace=namespace)

    async def install(self, *, chart: Path, values: Mapping[str, Any], helm_timeout: str) -> int:
        """`helm upgrade --install --wait --rollback-on-failure`; returns the new revision.

        Raises `TaskFailed("InstallFailed")` with helm's error (the release is rolled back).
        """
        timeout = go_duration(helm_timeout, name="The install timeout")
        self._log.info("helm install started", chart=str(chart), timeout=timeout)
        v4 = self.client.version.major >= 4
        try:
            loaded = await self.client.get_chart(chart)
            revision = await self.client.install_or_upgrade_release(
                self.release,
                loaded,
                dict(values),
                # helm v4 renamed --atomic; pyhelm3 warns when given the other spelling.
                atomic=not v4,
                rollback_on_failure=v4,
                create_namespace=False,
                namespace=self.namespace,
                timeout=timeout,
                wait=True,
            )
        except helm_errors.Error as exc:
            message = helm_message(exc)
            self._log.error("helm install failed", error=message, kind=type(exc).__name__)
            raise TaskFailed(
                "InstallFailed",
                f"helm upgrade --install of release {self.release!r} in namespace "
                f"{self.namespace!r} failed (rolled back): {message}",
            ) from exc
        self._log.info(
            "helm install completed",
            revision=revision.revision,
            status=str(revision.status.value),
        )
        return int(revision.revision)

    async def uninstall(self, *, helm_timeout: str = "5m") -> None:
        """`helm uninstall --wait`; a release that was never installed counts as uninstalled.

        Raises `TaskFailed("UninstallFailed")` on any other helm error.
        """
        timeout = go_duration(helm_timeout, name="The uninstall timeout")
        try:
            # Client.uninstall_release treats helm's "release: not found" as done.
            await self.client.uninstall_release(
                self.release, namespace=self.namespace, timeout=timeout, wait=True
            )
        except helm_errors.Error as exc:
            message = helm_message(exc)
            self._log.error("helm uninstall failed", error=message, kind=type(exc).__name__)
            raise TaskFailed(
                "UninstallFailed",
                f"helm uninstall of release {self.release!r} in namespace {self.namespace!r} "
                f"failed: {message}",
            ) from exc
        self._log.info("helm uninstall completed")
