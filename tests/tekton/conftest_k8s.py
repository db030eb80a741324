"""Fixtures of the Kubernetes task tests (imported by them): a kmock fake apiserver with the
resources the tasks use, builders of realistic pods and Jobs, the iris job bundle, and a pyhelm3
Command double that records helm's arguments and answers like helm v4.1.4."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import pytest_asyncio
import semver
import structlog
import yaml
from kubernetes.aio import client
from pyhelm3 import errors as helm_errors
from typer.testing import CliRunner, Result

from ir.bundle import IRFiles, JobBundle, render_bundle
from tekton.kube import Kube
from tekton.tasks.helm import JobHelmCommand

NS = "scoring-jobs"
JOB = "j-0123abcd"
PODS = kmock.resource("v1/pods")
JOBS = kmock.resource("batch/v1/jobs")
SECRETS = kmock.resource("v1/secrets")


def labels(
    *, component: str, flow: str | None = None, service: str | None = None
) -> dict[str, str]:
    """The labels the scoring-pipeline chart puts on a pod or Job of job `JOB`."""
    out = {
        "app.kubernetes.io/name": "scoring-pipeline",
        "app.kubernetes.io/instance": JOB,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "tekscore",
        "tekscore.dev/job": JOB,
        "tekscore.dev/pipeline": "iris-batch",
    }
    if flow:
        out["tekscore.dev/flow"] = flow
    if service:
        out["tekscore.dev/service"] = service
    return out


def container_status(
    name: str,
    *,
    waiting: tuple[str, str] | None = None,
    terminated: dict[str, Any] | None = None,
    last_terminated: dict[str, Any] | None = None,
    restarts: int = 0,
    ready: bool = False,
) -> dict[str, Any]:
    """A containerStatuses entry as the kubelet reports it."""
    if waiting is not None:
        state: dict[str, Any] = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    elif terminated is not None:
        state = {"terminated": terminated}
    else:
        state = {"running": {"startedAt": "2026-01-01T10:00:05Z"}}
    return {
        "name": name,
        "image": "ghcr.io/tekscore/tekscore:0.1.0",
        "imageID": "",
        "ready": ready,
        "restartCount": restarts,
        "started": ready,
        "state": state,
        "lastState": {"terminated": last_terminated} if last_terminated else {},
    }


def pod(
    name: str,
    *,
    component: str,
    statuses: list[dict[str, Any]],
    flow: str | None = None,
    service: str | None = None,
    phase: str = "Running",
    job: str = JOB,
    job_name: str | None = None,
) -> dict[str, Any]:
    """A pod of the chart as `kubectl get pod -o json` shows it."""
    meta_labels = labels(component=component, flow=flow, service=service)
    meta_labels["tekscore.dev/job"] = job
    if job_name:
        meta_labels["batch.kubernetes.io/job-name"] = job_name
        meta_labels["job-name"] = job_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": meta_labels,
            "resourceVersion": "1000",
        },
        "spec": {"containers": [{"name": s["name"], "image": s["image"]} for s in statuses]},
        "status": {"phase": phase, "containerStatuses": statuses},
    }


def job_object(
    name: str, *, flow: str, conditions: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A batch flow's Job as the chart creates it, with the Job controller's status."""
    status: dict[str, Any] = {"startTime": "2026-01-01T10:00:00Z", "active": 1}
    if conditions:
        status = {"startTime": "2026-01-01T10:00:00Z", "conditions": conditions}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": labels(component="scoring-flow", flow=flow),
            "resourceVersion": "1000",
        },
        "spec": {"completions": 1, "parallelism": 1, "backoffLimit": 2},
        "status": status,
    }


def complete() -> list[dict[str, Any]]:
    return [
        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
        {"type": "Complete", "status": "True", "reason": "CompletionsReached"},
    ]


@dataclass
class FakeCluster:
    """kmock as the cluster: objects in, API client out, changes that the watches see."""

    server: kmock.KubernetesEmulator
    api: Any

    @property
    def kube(self) -> Kube:
        """The one Kubernetes client of the code under test, on this fake apiserver."""
        return Kube(self.api)

    @property
    def url(self) -> str:
        return str(self.server.url).rstrip("/")

    def add(self, resource: Any, obj: dict[str, Any]) -> None:
        """Put an object in place before the code under test lists (no watch event)."""
        meta = obj["metadata"]
        self.server.objects[resource, meta.get("namespace", NS), meta["name"]] = obj

    async def create(self, path: str, obj: dict[str, Any]) -> None:
        """POST through the API, so running watches see ADDED."""
        async with aiohttp.ClientSession() as session:
            response = await session.post(f"{self.url}{path}", json=obj)
            assert response.status < 300, await response.text()

    async def patch(self, path: str, body: dict[str, Any]) -> None:
        """PATCH through the API (kmock merges dicts), so running watches see MODIFIED."""
        async with aiohttp.ClientSession() as session:
            response = await session.patch(f"{self.url}{path}", json=body)
            assert response.status < 300, await response.text()

    def add_secret(self, name: str, data: dict[str, str]) -> None:
        import base64

        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        self.add(
            SECRETS,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": NS},
                "data": encoded,
            },
        )

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig pointing at this fake apiserver (what `connect()` reads outside a pod)."""
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
                    "users": [{"name": "task", "user": {"token": "not-a-secret"}}],
                    "contexts": [
                        {"name": "kmock", "context": {"cluster": "kmock", "user": "task"}}
                    ],
                    "current-context": "kmock",
                }
            )
        )
        return path


@pytest_asyncio.fixture
async def cluster(kmock: kmock.KubernetesEmulator) -> AsyncIterator[FakeCluster]:
    """The fake apiserver with pods, Jobs and Secrets declared, and an API client for it."""
    kmock.resources["v1/pods"] = {}  # type: ignore[assignment]
    kmock.resources["batch/v1/jobs"] = {}  # type: ignore[assignment]
    kmock.resources["v1/secrets"] = {}  # type: ignore[assignment]
    configuration = client.Configuration(host=str(kmock.url).rstrip("/"))
    async with client.ApiClient(configuration) as api:
        yield FakeCluster(server=kmock, api=api)


# ---------------------------------------------------------------------------------- helm double


@dataclass
class HelmCall:
    argv: list[str]
    stdin: Any


@dataclass
class RecordingHelm(JobHelmCommand):
    """The pyhelm3 Command double: pyhelm3 builds the real argument lists and parses answers;
    only the helm process is replaced. Records both the method calls (`calls`) and the argv
    (`runs`); `fail_install` / `missing_release` make it raise pyhelm3's own errors."""

    fail_install: str | None = None
    missing_release: bool = False
    fail_uninstall: str | None = None
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    runs: list[HelmCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        JobHelmCommand.__init__(self, executable="helm")  # type: ignore[call-arg]

    def client_version(self) -> semver.Version:
        return semver.Version.parse("4.1.4")

    async def install_or_upgrade(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("install_or_upgrade", args, kwargs))
        return await super().install_or_upgrade(*args, **kwargs)

    async def uninstall(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("uninstall", args, kwargs))
        return await super().uninstall(*args, **kwargs)

    async def run_helm(self, command: Any, input: bytes | None) -> bytes:
        argv = [str(part) for part in command]
        self.runs.append(HelmCall(argv=argv, stdin=json.loads(input) if input else None))
        verb = argv[0]
        if argv[:2] == ["show", "chart"]:
            return (Path(argv[2]) / "Chart.yaml").read_bytes()
        if verb == "upgrade":
            if self.fail_install:
                raise helm_errors.Error(1, b"", self.fail_install.encode())
            release, namespace = argv[1], argv[argv.index("--namespace") + 1]
            chart = yaml.safe_load((Path(argv[2]) / "Chart.yaml").read_text())
            return json.dumps(
                {
                    "name": release,
                    "namespace": namespace,
                    "version": 1,
                    "info": {
                        "first_deployed": "2026-01-01T10:00:00Z",
                        "last_deployed": "2026-01-01T10:00:00Z",
                        "status": "deployed",
                        "description": "Install complete",
                    },
                    "chart": {
                        "metadata": {
                            k: chart[k] for k in ("apiVersion", "name", "version", "appVersion")
                        }
                    },
                    "config": self.runs[-1].stdin,
                    "manifest": "---\n# Source: scoring-pipeline/templates/x.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
                    "hooks": [],
                }
            ).encode()
        if verb == "uninstall":
            if self.missing_release:
                raise helm_errors.ReleaseNotFoundError(
                    1,
                    b"",
                    f"Error: uninstall: Release not loaded: {argv[1]}: release: not found\n".encode(),
                )
            if self.fail_uninstall:
                raise helm_errors.Error(1, b"", self.fail_uninstall.encode())
            return f'release "{argv[1]}" uninstalled\n'.encode()
        raise AssertionError(f"unexpected helm call {argv}")


# ---------------------------------------------------------------------------------- job bundle


def iris_bundle(iris_dir: Path, *, job_id: str = JOB) -> JobBundle:
    """The iris batch example as the scheduler would hand it to the install task."""
    files = {str(iris_dir / n): (iris_dir / n).read_text() for n in ("model.yaml", "batch.yaml")}
    bundle = JobBundle(job_id=job_id, pipeline=IRFiles(files=files), base_dir=str(iris_dir))
    return bundle.model_copy(update={"content_hash": render_bundle(bundle).content_hash})


# ---------------------------------------------------------------------------------- the CLI


async def invoke(args: list[str], env: dict[str, str]) -> Result:
    """Run `tekscore <args>` in a thread (its own event loop) while kmock serves in ours."""
    from scheduler.cli.main import create_app

    app = create_app()
    runner = CliRunner()
    try:
        return await asyncio.to_thread(runner.invoke, app, args, env=env, catch_exceptions=False)
    finally:
        structlog.reset_defaults()
