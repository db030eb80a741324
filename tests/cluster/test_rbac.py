"""Least privilege, proved on the real apiserver with RBAC: the scheduler acts with the token the
test kubelet mounted into its pod (TokenRequest API, bound to the pod) and the tasks with their
ServiceAccount's; each can do what the job needs and is refused (403 Forbidden, not 404) what it
must not."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.cluster import JOBS_NS, PLATFORM_NS, Cluster

pytestmark = pytest.mark.timeout(900)


def scheduler_token(cluster: Cluster) -> str:
    """The token file inside the running scheduler pod (what it authenticates with)."""
    (pod,) = cluster.get("-n", PLATFORM_NS, "pods", "-l", "app.kubernetes.io/component=scheduler")[
        "items"
    ]
    assert pod["spec"]["serviceAccountName"] == "tekscore"
    volumes = Path(cluster.base / "kubelet" / "pods" / pod["metadata"]["uid"] / "volumes")
    (token,) = volumes.glob("kube-api-access-*/token")
    return token.read_text()


def allowed(cluster: Cluster, token: str, *args: str) -> bool:
    result = cluster.kubectl(*args, token=token, check=False)
    if result.returncode == 0 or "NotFound" in result.stderr:
        return True
    assert "Forbidden" in result.stderr, result.stderr
    return False


def test_the_scheduler_can_run_jobs_and_nothing_more(cluster: Cluster) -> None:
    token = scheduler_token(cluster)
    whoami = cluster.kubectl(
        "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", token=token
    ).stdout
    assert whoami == "system:serviceaccount:tekscore:tekscore"
    ns = ["-n", JOBS_NS]
    assert allowed(cluster, token, *ns, "get", "pipelineruns")
    assert allowed(cluster, token, *ns, "get", "taskruns")
    assert allowed(cluster, token, *ns, "get", "configmap", "no-such-ir")
    assert allowed(cluster, token, *ns, "delete", "secret", "no-such-callback")
    # refused: the release's workloads, reading secrets in bulk, pods, other namespaces
    assert not allowed(cluster, token, *ns, "delete", "deployment", "anything")
    assert not allowed(cluster, token, *ns, "get", "secrets")
    assert not allowed(cluster, token, *ns, "get", "pods")
    assert not allowed(cluster, token, *ns, "delete", "taskrun", "anything")
    assert not allowed(cluster, token, "-n", "default", "get", "pipelineruns")
    assert not allowed(cluster, token, "get", "namespaces")


def test_the_tasks_can_install_a_release_in_the_jobs_namespace_only(cluster: Cluster) -> None:
    token = cluster.token("tekscore-task", JOBS_NS)
    ns = ["-n", JOBS_NS]
    for verb_args in (
        ("delete", "deployment", "x"),
        ("delete", "job", "x"),
        ("delete", "service", "x"),
        ("get", "secrets"),
        ("get", "pods"),
        ("get", "events"),
    ):
        assert allowed(cluster, token, *ns, *verb_args), verb_args
    # refused: another namespace (the platform's, with the API tokens), namespaces, Tekton
    assert not allowed(cluster, token, "-n", PLATFORM_NS, "get", "secret", "tekscore-auth")
    assert not allowed(cluster, token, "-n", PLATFORM_NS, "delete", "deployment", "tekscore")
    assert not allowed(cluster, token, "-n", "default", "get", "pods")
    assert not allowed(cluster, token, "create", "namespace", "elsewhere")
    assert not allowed(cluster, token, *ns, "delete", "pipelinerun", "x")
    assert not allowed(cluster, token, *ns, "delete", "role", "tekscore-task")
