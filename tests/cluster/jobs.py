"""Test helpers of the cluster suite (does I/O): jobs through the scheduler's HTTP API (its
Service's ClusterIP), and what an operator sees of them with kubectl."""

from __future__ import annotations

import json
import ssl
import threading
from pathlib import Path
from typing import Any

import httpx

from tests.cluster.cluster import JOBS_NS, Cluster, Gave, wait_for

FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED")


def files_body(
    paths: list[Path], *, parameters: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """A start request with the IR as `{"files": {name: text}}` and `base_dir` = their folder."""
    return {
        "pipeline": {"files": {p.name: p.read_text() for p in paths}},
        "parameters": parameters or {},
        "base_dir": str(paths[0].parent),
        **extra,
    }


class Jobs:
    """The scheduler's job API, as a modelops server would call it."""

    def __init__(self, cluster: Cluster, *, url: str | None = None) -> None:
        self.cluster = cluster
        self.http = httpx.Client(
            base_url=url or cluster.scheduler_url,
            trust_env=False,
            timeout=30.0,
            headers={"Authorization": f"Bearer {cluster.api_token}"},
        )

    def __enter__(self) -> Jobs:
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def start(self, body: dict[str, Any], **headers: str) -> dict[str, Any]:
        response = self.http.post("/api/v1/jobs", json=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        job: dict[str, Any] = response.json()
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job

    def events(self, job_id: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/api/v1/jobs/{job_id}/events")
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()
        return events

    def cancel(self, job_id: str) -> httpx.Response:
        return self.http.post(f"/api/v1/jobs/{job_id}/cancel")

    def wait(self, job_id: str, *states: str, timeout: float = 240) -> dict[str, Any]:
        """Poll the job until its state is one of `states` (default: finished)."""
        wanted = states or FINISHED

        def reached() -> dict[str, Any] | None:
            job = self.get(job_id)
            if job["state"] in wanted:
                return job
            if job["state"] in FINISHED:
                raise Gave(
                    f"job {job_id} ended {job['state']}, not {wanted}: {json.dumps(job)[:1500]}"
                )
            return None

        try:
            found: dict[str, Any] = wait_for(
                f"job {job_id} to reach {wanted}", reached, timeout=timeout, interval=0.3
            )
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}\n{self.situation(job_id)}") from None
        return found

    def situation(self, job_id: str) -> str:
        """What a failed wait shows: the job, its events, and what kubectl shows of its pods,
        Jobs and TaskRuns and the namespace's events."""
        parts = [f"job: {json.dumps(self.get(job_id))[:3000]}"]
        parts.append(f"job events: {json.dumps(self.events(job_id))[-3000:]}")
        for what in (
            ["get", "pods,jobs,taskruns", "-o", "wide"],
            ["get", "events", "--sort-by=.lastTimestamp"],
        ):
            shown = self.cluster.kubectl("-n", JOBS_NS, *what, check=False)
            parts.append(f"kubectl {' '.join(what)}:\n{(shown.stdout + shown.stderr)[-4000:]}")
        return "\n".join(parts)

    def wait_task(self, job_id: str, task: str, *, timeout: float = 180) -> dict[str, Any]:
        """Poll until the job runs `task` (install, wait, finally)."""

        def running() -> dict[str, Any] | None:
            job = self.get(job_id)
            if job["state"] in FINISHED:
                raise Gave(f"job {job_id} ended {job['state']} before task {task}")
            return job if job["task"] == task else None

        found: dict[str, Any] = wait_for(
            f"job {job_id} to run task {task}", running, timeout=timeout
        )
        return found


# -- what kubectl shows ---------------------------------------------------------------------------


def taskruns(cluster: Cluster, job_id: str) -> dict[str, dict[str, Any]]:
    """The job's TaskRuns by pipeline task (install, wait, uninstall)."""
    items = cluster.get("-n", JOBS_NS, "taskruns", "-l", f"tekton.dev/pipelineRun={job_id}")[
        "items"
    ]
    return {tr["metadata"]["labels"]["tekton.dev/pipelineTask"]: tr for tr in items}


def condition(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, reason) of the Succeeded condition of a PipelineRun or TaskRun."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Succeeded":
            return cond.get("status", ""), cond.get("reason", "")
    return "", ""


def leftovers(cluster: Cluster, job_id: str) -> dict[str, list[str]]:
    """What is left of a job's release: the helm release (its storage Secrets), the chart's
    objects, and the job's callback Secret."""
    left = {}
    releases = json.loads(
        cluster.helm(
            "list",
            "-n",
            JOBS_NS,
            "-o",
            "json",
            "--deployed",
            "--failed",
            "--pending",
            "--superseded",
            "--uninstalling",
        ).stdout
    )
    left["releases"] = [r["name"] for r in releases if r["name"] == job_id]
    # the release's objects (the PipelineRun's own TaskRun pods and IR ConfigMap stay with it)
    selector = f"tekscore.dev/job={job_id},app.kubernetes.io/managed-by=Helm"
    for kind in ("deployments", "jobs", "services", "configmaps", "replicasets", "pods"):
        items = cluster.get("-n", JOBS_NS, kind, "-l", selector)["items"]
        left[kind] = [i["metadata"]["name"] for i in items]
    secret = cluster.kubectl("-n", JOBS_NS, "get", "secret", f"{job_id}-callback", check=False)
    left["secrets"] = [f"{job_id}-callback"] if secret.returncode == 0 else []
    storage = cluster.get("-n", JOBS_NS, "secrets", "-l", f"owner=helm,name={job_id}")["items"]
    left["secrets"] += [i["metadata"]["name"] for i in storage]
    return {k: v for k, v in left.items() if v}


def nothing_left(cluster: Cluster, job_id: str) -> bool:
    """True once the release and everything labelled with the job is gone (pods end after a
    grace period, so this is polled); AssertionError naming what is left, for `wait_for`."""
    left = leftovers(cluster, job_id)
    if left:
        raise AssertionError(f"left of {job_id}: {left}")
    return True


def latest_flows(run: dict[str, Any]) -> dict[str, Any]:
    """The flows' status an operator reads on a run: its annotation of the highest generation,
    `tekscore.dev/flows.<n>` (`tekscore.dev/flows`, written at start, is generation 0)."""
    annotations = run["metadata"].get("annotations") or {}
    generations = {
        0 if key == "tekscore.dev/flows" else int(key.rsplit(".", 1)[1]): value
        for key, value in annotations.items()
        if key == "tekscore.dev/flows" or key.startswith("tekscore.dev/flows.")
    }
    doc: dict[str, Any] = json.loads(generations[max(generations)])
    return doc


def _apiserver(cluster: Cluster, timeout: float | None) -> httpx.Client:
    return httpx.Client(
        base_url=cluster.env["APISERVER_URL"],
        verify=ssl.create_default_context(cafile=cluster.env["CA_CERT"]),
        trust_env=False,
        timeout=timeout,
        headers={"Authorization": f"Bearer {cluster.env['ADMIN_TOKEN']}"},
    )


class Versions:
    """Every version of a job's PipelineRun, as a watch of the apiserver delivers them, in a
    thread (`with Versions(cluster, job_id) as versions`, then `versions.seen`)."""

    def __init__(self, cluster: Cluster, job_id: str) -> None:
        self.job_id = job_id
        self.http = _apiserver(cluster, None)
        self.seen: list[dict[str, Any]] = []
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._ready = threading.Event()

    def _watch(self) -> None:
        """The run as it is, then every change from its resourceVersion on: watches of a second
        each (so the thread sees the stop), each from the last version seen (after an error
        event too, e.g. the apiserver's watch cache not yet at that version)."""
        path = f"/apis/tekton.dev/v1/namespaces/{JOBS_NS}/pipelineruns"
        try:
            self.seen.append(self.http.get(f"{path}/{self.job_id}").json())
            self._ready.set()
            while not self._stop.is_set():
                params = {
                    "watch": "1",
                    "fieldSelector": f"metadata.name={self.job_id}",
                    "resourceVersion": self.seen[-1]["metadata"]["resourceVersion"],
                    "timeoutSeconds": "1",
                }
                with self.http.stream("GET", path, params=params) as answer:
                    for line in answer.iter_lines():
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            self._stop.wait(1.0)
                            break
                        self.seen.append(event["object"])
        except httpx.HTTPError as exc:
            self.error = exc

    def __enter__(self) -> Versions:
        self._thread.start()
        assert self._ready.wait(30), "the watch delivered nothing"  # the run as it is now
        return self

    def __exit__(self, failed: object, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.http.close()
        if failed is None:
            assert self.error is None, f"the watch of {self.job_id} failed: {self.error!r}"


class Reasons:
    """Records every (status, reason) the Succeeded condition of a job's PipelineRun goes
    through, polling the apiserver every 0.1 s in a thread (`with Reasons(cluster, job_id)`)."""

    def __init__(self, cluster: Cluster, job_id: str) -> None:
        self.path = f"/apis/tekton.dev/v1/namespaces/{JOBS_NS}/pipelineruns/{job_id}"
        self.http = _apiserver(cluster, 10)
        self.seen: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                answer = self.http.get(self.path)
            except httpx.HTTPError:
                answer = None
            if answer is not None and answer.status_code == 200:
                found = condition(answer.json())
                if found != ("", "") and (not self.seen or self.seen[-1] != found):
                    self.seen.append(found)
                if found[0] in ("True", "False"):
                    return
            self._stop.wait(0.1)

    def __enter__(self) -> Reasons:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._thread.join(timeout=300)
        self._stop.set()
        self.http.close()
