"""The scoring-pipeline chart with real helm: lint, render, Kubernetes schemas, values schema,
security posture, secrets by reference, names flows rely on, Indexed Jobs, and a golden render."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

import ir
from tests.charts.helpers import (
    ROOT,
    SCORING_CHART,
    by_kind,
    helm,
    pod_specs,
    render_ir,
    service_host,
    template,
    validate_builtin,
    values_of_paths,
)

GOLDEN = Path(__file__).parent / "golden" / "iris-batch.yaml"
CHECKOUT = "/checkout"  # stands for this checkout in the golden file


def test_lint_strict_with_defaults() -> None:
    helm("lint", "--strict", SCORING_CHART)


@pytest.mark.parametrize("example", ["iris_batch_values", "iris_streaming_values"])
def test_lint_strict_with_iris_values(
    example: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    values = request.getfixturevalue(example)
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    helm("lint", "--strict", SCORING_CHART, "-f", path)


def test_defaults_render_no_object(tmp_path: Path) -> None:
    assert template(SCORING_CHART, tmp_path=tmp_path) == []


@pytest.mark.parametrize("example", ["iris_batch_values", "iris_streaming_values", "big"])
def test_every_rendered_object_is_valid_kubernetes(
    example: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if example == "big":
        objects = request.getfixturevalue("big_objects")
        assert len(objects) > 400
    else:
        objects = template(SCORING_CHART, request.getfixturevalue(example), tmp_path=tmp_path)
    assert objects
    for obj in objects:
        validate_builtin(obj)


def test_values_schema_is_generated_from_the_model() -> None:
    """The committed values.schema.json is exactly what `tekscore schema --values` prints."""
    tekscore = Path(sys.executable).with_name("tekscore")
    if tekscore.exists():
        printed = subprocess.run(
            [str(tekscore), "schema", "--values"], capture_output=True, text=True, check=True
        ).stdout
    else:  # the same function the command prints
        printed = json.dumps(ir.values_json_schema(), indent=2, sort_keys=True) + "\n"
    committed = (SCORING_CHART / "values.schema.json").read_text(encoding="utf-8")
    assert committed == printed, (
        "charts/scoring-pipeline/values.schema.json is stale: "
        "run `tekscore schema --values > charts/scoring-pipeline/values.schema.json`"
    )


def _broken(values: dict[str, Any], case: str) -> dict[str, Any]:
    bad = copy.deepcopy(values)
    if case == "unknown key":
        bad["scoringFlows"][0]["batchSize2"] = 10
    elif case == "wrong type":
        bad["scoringFlows"][0]["batchSize"] = "many"
    elif case == "missing job":
        del bad["job"]
    elif case == "bad name":
        bad["scoringServices"][0]["name"] = "Iris_Service"
    elif case == "bad mode":
        bad["scoringFlows"][0]["mode"] = "sometimes"
    elif case == "unknown global":
        bad["global"]["debug"] = True
    return bad


@pytest.mark.parametrize(
    "case", ["unknown key", "wrong type", "missing job", "bad name", "bad mode", "unknown global"]
)
def test_values_schema_rejects_malformed_values(
    case: str, iris_batch_values: dict[str, Any], tmp_path: Path
) -> None:
    bad = _broken(iris_batch_values, case)
    if case == "missing job":
        # helm merges the chart's default job into the values: only a job: null removes it
        bad["job"] = None
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    proc = helm("template", "x", SCORING_CHART, "-f", path, check=False)
    assert proc.returncode != 0, f"{case}: helm accepted malformed values"
    assert "schema" in proc.stderr, proc.stderr


def test_security_context_of_every_pod(big_objects: list[dict[str, Any]]) -> None:
    objects = big_objects
    specs = list(pod_specs(objects))
    assert len(specs) > 200
    for name, spec in specs:
        sc = spec["securityContext"]
        assert sc["runAsNonRoot"] is True, name
        assert sc["runAsUser"] == 10001, name
        assert sc["fsGroup"] == 10001, name
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"] + spec.get("initContainers", []):
            csc = container["securityContext"]
            assert csc["allowPrivilegeEscalation"] is False, name
            assert csc["readOnlyRootFilesystem"] is True, name
            assert csc["capabilities"] == {"drop": ["ALL"]}, name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in tmp_volumes, f"{name}: no emptyDir at /tmp"


def test_secrets_only_by_reference(
    big_values: dict[str, Any], big_objects: list[dict[str, Any]]
) -> None:
    objects = big_objects
    assert not by_kind(objects, "Secret"), "the chart must never create a Secret"
    text = yaml.safe_dump_all(objects)
    assert "secretAccessKey" in text  # the channel config names the reference ...
    flows = {f["name"]: f for f in big_values["scoringFlows"]}
    checked = 0
    for obj in objects:
        if obj["kind"] not in ("Job", "Deployment"):
            continue
        labels = obj["metadata"]["labels"]
        if labels["app.kubernetes.io/component"] != "scoring-flow":
            continue
        flow = flows[labels["tekscore.dev/flow"]]
        spec = obj["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        expected: dict[str, list[str]] = {}
        for ref in flow["secrets"]:
            expected.setdefault(ref["name"], []).append(ref["key"])
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounted = {}
        for mount in container["volumeMounts"]:
            volume = volumes[mount["name"]]
            if "secret" in volume:
                assert mount["readOnly"] is True
                assert (
                    mount["mountPath"]
                    == f"/var/run/secrets/tekscore/{volume['secret']['secretName']}"
                )
                mounted[volume["secret"]["secretName"]] = [
                    i["key"] for i in volume["secret"]["items"]
                ]
        assert mounted == {k: sorted(v) for k, v in expected.items()}, flow["name"]
        for env in container["env"]:
            if env["name"] == "TEKSCORE_POD_NAME":  # who reports: the downward API
                assert env["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
            elif "valueFrom" in env:  # ... and env only by secretKeyRef, never a value
                assert set(env["valueFrom"]) == {"secretKeyRef"}
        checked += bool(expected)
    assert checked > 50


def test_indexed_job_when_sharded(
    big_values: dict[str, Any], big_objects: list[dict[str, Any]]
) -> None:
    jobs = by_kind(big_objects, "Job")
    flows = {f["name"]: f for f in big_values["scoringFlows"]}
    assert len(jobs) == sum(f["mode"] == "batch" for f in flows.values())
    sharded = 0
    for job in jobs.values():
        flow = flows[job["metadata"]["labels"]["tekscore.dev/flow"]]
        spec = job["spec"]
        if flow["shards"] > 1:
            sharded += 1
            assert spec["completionMode"] == "Indexed"
            assert spec["completions"] == spec["parallelism"] == flow["shards"]
        else:
            assert "completionMode" not in spec
            assert spec["completions"] == spec["parallelism"] == 1
        assert spec["backoffLimit"] <= 3
        assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert sharded > 5


def test_streaming_flows_are_deployments_with_their_replicas(
    iris_streaming_values: dict[str, Any], tmp_path: Path
) -> None:
    objects = template(SCORING_CHART, iris_streaming_values, tmp_path=tmp_path, release="s")
    assert not by_kind(objects, "Job")
    deployments = by_kind(objects, "Deployment")
    for flow in iris_streaming_values["scoringFlows"]:
        deployment = deployments[f"iris-streaming-flow-{flow['name']}"]
        assert deployment["spec"]["replicas"] == flow["replicas"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["args"] == [
            "flow",
            "run",
            "/etc/tekscore/flow.json",
            "--metrics-port",
            "9090",
        ]


def test_python_services_are_reachable_at_their_url(
    big_values: dict[str, Any], big_objects: list[dict[str, Any]]
) -> None:
    objects = big_objects
    services = by_kind(objects, "Service")
    deployments = by_kind(objects, "Deployment")
    for svc in big_values["scoringServices"]:
        if svc["runtime"] == "external":
            host = urlparse(svc["url"]).hostname
            assert host not in services and host not in deployments
            continue
        host = service_host(big_values, svc["name"])
        assert host in services, f"no Service {host} for service {svc['name']}"
        assert svc["port"] == 8080
        assert [p["port"] for p in services[host]["spec"]["ports"]] == [8080]
        selector = services[host]["spec"]["selector"]
        pod_labels = deployments[host]["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items()
        assert deployments[host]["spec"]["selector"]["matchLabels"] == selector
        (container,) = deployments[host]["spec"]["template"]["spec"]["containers"]
        assert container["args"] == [
            "serve-model",
            "--config",
            "/etc/tekscore/service.json",
            "--host",
            "0.0.0.0",
            "--port",
            "8080",
            "--workers",
            str(svc["workers"]),
        ]
        assert container["resources"] == svc["resources"] | {
            "limits": {k: v for k, v in svc["resources"]["limits"].items()}
        }
        assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert (
            container["startupProbe"]["failureThreshold"]
            * container["startupProbe"]["periodSeconds"]
            >= 300
        )


def test_long_job_ids_give_the_service_name_of_the_url(tmp_path: Path) -> None:
    job_id = "j-" + "a" * 55 + "-b"  # <job.id>-<service> is cut at 63 and trailing '-' dropped
    values = ir.preprocess(
        ir.load_paths(
            [ROOT / "examples" / "iris" / "model.yaml", ROOT / "examples" / "iris" / "batch.yaml"]
        ),
        job=ir.JobInfo(id=job_id),
    ).values
    objects = template(SCORING_CHART, values, tmp_path=tmp_path)
    (svc,) = values["scoringServices"]
    assert service_host(values, svc["name"]) in by_kind(objects, "Service")
    for obj in objects:
        assert len(obj["metadata"]["name"]) <= 63
        validate_builtin(obj)


def test_config_maps_round_trip_the_values_entries(
    big_values: dict[str, Any], big_objects: list[dict[str, Any]]
) -> None:
    """What services and flows read from their ConfigMap validates as their values entry."""
    objects = big_objects
    maps = by_kind(objects, "ConfigMap")
    flows = 0
    for cm in maps.values():
        (key, text) = next(iter(cm["data"].items()))
        data = json.loads(text)
        if key == "flow.json":  # its entry, each logical endpoint resolved to its Service
            entry = next(f for f in big_values["scoringFlows"] if f["name"] == data["name"])
            resolved = {
                name: {k: v for k, v in ep.items() if k not in ("service", "port")}
                | ({"url": f"http://{service_host(big_values, ep['service'])}:{ep['port']}"})
                if "service" in ep
                else ep
                for name, ep in entry["services"].items()
            }
            assert ir.FlowValues.model_validate(data) == ir.FlowValues.model_validate(
                {**entry, "services": resolved}
            )
            assert all(ep["url"].startswith("http://") for ep in data["services"].values())
            flows += 1
        else:  # its entry, its logical endpoint resolved to its Service's url
            assert key == "service.json"
            entry = next(s for s in big_values["scoringServices"] if s["name"] == data["name"])
            assert entry["runtime"] == "python"
            url = f"http://{service_host(big_values, entry['name'])}:{entry['port']}"
            assert data == {**{k: v for k, v in entry.items() if k != "port"}, "url": url}
    assert flows == len(big_values["scoringFlows"])


def test_flow_environment(iris_batch_values: dict[str, Any], tmp_path: Path) -> None:
    def env_of(values: dict[str, Any]) -> dict[str, Any]:
        (job,) = by_kind(template(SCORING_CHART, values, tmp_path=tmp_path), "Job").values()
        (container,) = job["spec"]["template"]["spec"]["containers"]
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}

    env = env_of(iris_batch_values)
    assert env["TEKSCORE_JOB_ID"] == "iris-batch"
    assert "TEKSCORE_CALLBACK_URL" not in env
    assert env["TEKSCORE_CALLBACK_TOKEN"] == {
        "secretKeyRef": {"name": "iris-batch-callback", "key": "token", "optional": True}
    }
    assert env["TEKSCORE_LOG_LEVEL"] == "info"
    assert env["TEKSCORE_LOG_FORMAT"] == "json"
    assert env["TEKSCORE_SECRETS_DIR"] == "/var/run/secrets/tekscore"
    values = copy.deepcopy(iris_batch_values)
    values["global"] |= {"callbackUrl": "http://tekscore.platform.svc:8000", "logLevel": "debug"}
    env = env_of(values)
    assert env["TEKSCORE_CALLBACK_URL"] == "http://tekscore.platform.svc:8000"
    assert env["TEKSCORE_LOG_LEVEL"] == "debug"


def test_http_source_flows_get_a_service(
    iris_streaming_values: dict[str, Any], tmp_path: Path
) -> None:
    objects = template(SCORING_CHART, iris_streaming_values, tmp_path=tmp_path)
    service = by_kind(objects, "Service")["iris-streaming-flow-classify-http"]
    assert service["spec"]["ports"][0]["port"] == 8090
    assert service["spec"]["selector"]["tekscore.dev/flow"] == "classify-http"
    assert "iris-streaming-flow-classify-stream" not in by_kind(objects, "Service")


def test_labels(big_objects: list[dict[str, Any]]) -> None:
    for obj in big_objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "scoring-pipeline"
        assert labels["app.kubernetes.io/instance"] == "big"
        assert labels["app.kubernetes.io/part-of"] == "tekscore"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["helm.sh/chart"] == "scoring-pipeline-0.1.1"
        assert labels["tekscore.dev/job"] == "big"
        assert labels["tekscore.dev/pipeline"] == "big"
        assert "app.kubernetes.io/component" in labels
        selector = obj.get("spec", {}).get("selector")
        if obj["kind"] in ("Deployment", "Service"):
            selector = selector.get("matchLabels", selector)
            assert "helm.sh/chart" not in selector and "app.kubernetes.io/version" not in selector


def test_helm_test_hook_checks_every_python_service(
    big_values: dict[str, Any], big_objects: list[dict[str, Any]]
) -> None:
    (pod,) = by_kind(big_objects, "Pod").values()
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert container["command"][:2] == ["python", "-c"]
    compile(container["command"][2], "test-connection", "exec")
    urls = [
        f"http://{service_host(big_values, s['name'])}:{s['port']}"
        for s in big_values["scoringServices"]
        if s["runtime"] == "python"
    ]
    assert container["command"][3:] == urls


def test_colliding_object_names_fail_the_render(
    iris_batch_values: dict[str, Any], tmp_path: Path
) -> None:
    values = copy.deepcopy(iris_batch_values)
    service = copy.deepcopy(values["scoringServices"][0])
    service["name"] = "flow-classify"
    values["scoringServices"].append(service)
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    proc = helm("template", "x", SCORING_CHART, "-f", path, check=False)
    assert proc.returncode != 0
    assert "same object name" in proc.stderr


def _golden_text(values: dict[str, Any], tmp_path: Path) -> str:
    # the checkout's path goes into the values before rendering, so that what helm derives from
    # them (the ConfigMap checksum annotations) is the same in every checkout
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values).replace(str(ROOT), CHECKOUT), encoding="utf-8")
    return helm("template", "iris-batch", SCORING_CHART, "--namespace", "jobs", "-f", path).stdout


def test_golden_iris_batch(iris_batch_values: dict[str, Any], tmp_path: Path) -> None:
    """The iris batch render, byte for byte (UPDATE_GOLDEN=1 rewrites it)."""
    text = _golden_text(iris_batch_values, tmp_path)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    assert GOLDEN.exists(), "no golden file: run with UPDATE_GOLDEN=1"
    assert text == GOLDEN.read_text(encoding="utf-8"), "render changed: UPDATE_GOLDEN=1 to accept"
    assert CHECKOUT in text


def test_each_service_runs_its_runtime_image(tmp_path: Path) -> None:
    """A service runs from its runtime's image (global.runtimes), with the platform image's
    registry and tag; an external service gets no Deployment."""
    model = "apiVersion: tekscore.dev/v1\nkind: Model\nmetadata: {{name: {n}}}\nspec: {{{s}}}\n"
    files = {
        "models.yaml": "---\n".join(
            [
                model.format(n="tree", s="type: pmml, uri: file://tree.pmml"),
                model.format(n="net", s="type: tensorflow, uri: file://net"),
                model.format(n="gbm", s="type: xgboost, uri: file://gbm.ubj"),
                model.format(n="far", s="type: external, uri: 'http://mlserver:8080'"),
            ]
        ),
        "flow.yaml": """
apiVersion: tekscore.dev/v1
kind: ScoringPipeline
metadata: {name: mixed}
spec: {}
---
apiVersion: tekscore.dev/v1
kind: DataChannel
metadata: {name: in}
spec: {direction: source, type: inline, config: {records: [{}]}}
---
apiVersion: tekscore.dev/v1
kind: DataChannel
metadata: {name: out}
spec: {direction: sink, type: discard}
---
apiVersion: tekscore.dev/v1
kind: ScoringFlow
metadata: {name: f}
spec:
  source: in
  sink: out
  steps:
    - {type: score, model: tree}
    - {type: score, model: net}
    - {type: score, model: gbm}
    - {type: score, model: far}
""",
    }
    globals_ = ir.GlobalValues.model_validate(
        {
            "image": {"registry": "registry.acme:5000", "repository": "ml/tekscore", "tag": "7"},
            "runtimes": {
                "python": {"supportedModels": ["xgboost"]},
                "pmml": {"supportedModels": ["pmml"], "image": "ml/tekscore-pmml"},
                "tensorflow": {"supportedModels": ["tensorflow"], "image": "ml/tekscore-tf"},
            },
        }
    )
    values = render_ir(files, base_dir=tmp_path, globals_=globals_)
    runtimes = {s["name"]: s["runtime"] for s in values["scoringServices"]}
    assert runtimes == {"far": "external", "gbm": "python", "net": "tensorflow", "tree": "pmml"}
    objects = template(SCORING_CHART, values, tmp_path=tmp_path)
    images = {
        name.removeprefix("Deployment/mixed-"): spec["containers"][0]["image"]
        for name, spec in pod_specs(list(by_kind(objects, "Deployment").values()))
    }
    assert images == {
        "gbm": "registry.acme:5000/ml/tekscore:7",
        "net": "registry.acme:5000/ml/tekscore-tf:7",
        "tree": "registry.acme:5000/ml/tekscore-pmml:7",
    }
    for obj in objects:
        validate_builtin(obj)


def test_a_racetrack_jobs_memory_max_is_its_service_containers_limit(tmp_path: Path) -> None:
    from tests.scoring_service.racetrack_jobs import write_job
    from tests.scoring_service.test_racetrack_pipeline import pipeline

    job = write_job(
        tmp_path / "adder",
        requirements=None,
        resources={"memory_min": "256Mi", "memory_max": "1Gi", "cpu_max": "1000m"},
    )
    values = values_of_paths([pipeline(tmp_path), job / "job.yaml"])
    objects = template(SCORING_CHART, values, tmp_path=tmp_path)
    (deployment,) = by_kind(objects, "Deployment").values()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"memory": "256Mi"},
        "limits": {"memory": "1Gi", "cpu": "1000m"},
    }
    for obj in objects:
        validate_builtin(obj)
