"""The platform chart as an umbrella (real helm): with only the python scoring server (and the
flows) enabled it renders exactly the objects it rendered before it had sub-charts (golden);
every sub-chart lints and renders valid objects; the scoring servers' supportedModels are the
IR's runtimes and reach the scheduler's globals; and the platform build Pipeline
`tekscore-platform-build` follows the enabled sub-charts' build steps in dependency order,
passes the Tekton schemas and tekton-lint, and `tekscore platform plan` prints its order."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import ir
from common.ports import free_port
from ir.runtimes import BUILTIN_RUNTIMES
from tekton.platform import PlanError, find_pipeline, plan_of, subchart_values_schema
from tests.charts.helpers import (
    PLATFORM_CHART,
    ROOT,
    by_kind,
    dumps,
    helm,
    pod_specs,
    tekton_errors,
    template,
    validate_builtin,
)
from tests.scoring_flow.conftest import wait_until

GOLDEN = Path(__file__).parent / "golden" / "tekscore-python-only.yaml"
SUBCHARTS = sorted(p.name for p in (PLATFORM_CHART / "charts").iterdir() if p.is_dir())
SCORING_SERVERS = [n for n in SUBCHARTS if n.startswith("scoring-server-")]
ALL_ON = [
    "--set",
    "scoring-server-pmml.enabled=true",
    "--set",
    "scoring-server-tensorflow.enabled=true",
    "--set",
    "global.platformBuild.enabled=true",
    "--set",
    "test-data.enabled=true",
]
TEKSCORE = Path(sys.executable).parent / "tekscore"


def test_python_only_renders_exactly_the_objects_of_before(tmp_path: Path) -> None:
    """The golden file is `helm template tekscore charts/tekscore -n tekscore` of the chart before
    it became an umbrella (main at 5331de9); UPDATE_GOLDEN=1 rewrites it after a deliberate
    change."""
    text = helm("template", "tekscore", PLATFORM_CHART, "--namespace", "tekscore").stdout
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_the_sub_charts_are_the_platforms_parts() -> None:
    chart = yaml.safe_load((PLATFORM_CHART / "Chart.yaml").read_text())
    listed = {d["name"]: d["condition"] for d in chart["dependencies"]}
    assert sorted(listed) == SUBCHARTS
    assert all(condition == f"{name}.enabled" for name, condition in listed.items())
    assert SCORING_SERVERS == [
        "scoring-server-pmml",
        "scoring-server-python",
        "scoring-server-tensorflow",
    ]


@pytest.mark.parametrize("name", SUBCHARTS)
def test_every_sub_chart_lints_strict(name: str) -> None:
    helm("lint", "--strict", PLATFORM_CHART / "charts" / name)
    schema = json.loads((PLATFORM_CHART / "charts" / name / "values.schema.json").read_text())
    assert schema == subchart_values_schema(name)


def test_sub_chart_schemas_refuse_unknown_model_types(tmp_path: Path) -> None:
    values = tmp_path / "v.yaml"
    values.write_text("supportedModels: [keras]\n")
    failed = helm(
        "lint", PLATFORM_CHART / "charts" / "scoring-server-pmml", "-f", values, check=False
    )
    assert failed.returncode != 0
    assert "supportedModels" in failed.stdout + failed.stderr


def test_the_umbrella_with_everything_on_lints_and_validates(tmp_path: Path) -> None:
    helm("lint", "--strict", PLATFORM_CHART, *ALL_ON)
    objects = template(PLATFORM_CHART, tmp_path=tmp_path, release="tekscore", extra=ALL_ON)
    for obj in objects:
        if obj["apiVersion"].startswith("tekton.dev/"):
            assert tekton_errors(obj) == [], obj["metadata"]["name"]
        else:
            validate_builtin(obj)


@pytest.mark.parametrize("server", SCORING_SERVERS)
def test_scoring_servers_declare_the_ir_runtimes(server: str) -> None:
    values = yaml.safe_load((PLATFORM_CHART / "charts" / server / "values.yaml").read_text())
    runtime = BUILTIN_RUNTIMES[server.removeprefix("scoring-server-")]
    assert values["supportedModels"] == runtime.supported_models
    assert (f"tekscore/{values['image']}" if values["image"] else None) == runtime.image


def _globals(objects: list[dict[str, Any]]) -> ir.GlobalValues:
    config = by_kind(objects, "ConfigMap")["tekscore-globals"]
    return ir.GlobalValues.model_validate(yaml.safe_load(config["data"]["globals.yaml"]))


def test_enabled_scoring_servers_reach_the_schedulers_globals(tmp_path: Path) -> None:
    python_only = _globals(template(PLATFORM_CHART, tmp_path=tmp_path, release="tekscore"))
    assert list(python_only.runtimes) == ["python"]
    objects = template(
        PLATFORM_CHART,
        tmp_path=tmp_path,
        release="tekscore",
        extra=[
            "--set",
            "scoring-server-pmml.enabled=true",
            "--set",
            "image.repository=acme/scoring",
        ],
    )
    runtimes = _globals(objects).runtimes
    assert list(runtimes) == ["python", "pmml"]
    assert runtimes["pmml"].image == "acme/tekscore-pmml"
    assert runtimes["python"].image is None
    assert runtimes["python"].supported_models == BUILTIN_RUNTIMES["python"].supported_models


def _pipeline(tmp_path: Path, *extra: str) -> dict[str, Any]:
    objects = template(PLATFORM_CHART, tmp_path=tmp_path, release="tekscore", extra=list(extra))
    return dict(find_pipeline(objects))


def test_the_build_pipeline_follows_the_build_steps(tmp_path: Path) -> None:
    plan = plan_of(_pipeline(tmp_path, *ALL_ON), {"tag": "9.9"})
    stages = [[t.name for t in stage] for stage in plan.stages]
    assert stages == [
        ["build-tekscore"],
        ["build-tekscore-pmml", "build-tekscore-tensorflow"],
        ["tekscore-pmml-check"],
        ["deploy"],
    ]
    assert plan.images == [
        "ghcr.io/tekscore/tekscore:9.9",
        "ghcr.io/tekscore/tekscore-pmml:9.9",
        "ghcr.io/tekscore/tekscore-tensorflow:9.9",
    ]
    pmml = plan.stages[1][0]
    assert pmml.dockerfile == "docker/pmml.Dockerfile"
    assert pmml.build_args == ("--build-arg=BASE_IMAGE=ghcr.io/tekscore/tekscore:9.9",)
    assert set(plan.stages[3][0].after) == {
        "build-tekscore",
        "build-tekscore-pmml",
        "build-tekscore-tensorflow",
        "tekscore-pmml-check",
    }
    python_only = plan_of(_pipeline(tmp_path, "--set", "global.platformBuild.enabled=true"))
    assert [[t.name for t in s] for s in python_only.stages] == [["build-tekscore"], ["deploy"]]


def test_bad_build_steps_fail_the_render(tmp_path: Path) -> None:
    values = tmp_path / "bad.yaml"
    values.write_text(
        "global: {platformBuild: {enabled: true}}\n"
        "scoring-server-tensorflow:\n"
        "  enabled: true\n"
        "  build:\n"
        "    steps:\n"
        "      - {name: tf, dockerfile: x, image: tf, after: [nowhere]}\n"
    )
    failed = helm("template", "t", PLATFORM_CHART, "-f", values, check=False)
    assert failed.returncode != 0
    assert (
        'build step "tf" of scoring-server-tensorflow needs "nowhere", which no enabled '
        "sub-chart builds (steps: tekscore, tf)" in failed.stderr
    )
    twice = tmp_path / "twice.yaml"
    twice.write_text(
        "global: {platformBuild: {enabled: true}}\n"
        "scoring-server-tensorflow:\n"
        "  enabled: true\n"
        "  build: {steps: [{name: tekscore, dockerfile: x, image: other}]}\n"
    )
    failed = helm("template", "t", PLATFORM_CHART, "-f", twice, check=False)
    assert 'build step "tekscore" is declared twice (the second in scoring-server-tensorflow)' in (
        failed.stderr
    )


def test_a_cycle_is_refused_by_the_plan() -> None:
    tasks = [
        {"name": "a", "taskRef": {"name": "tekscore-build-image"}, "runAfter": ["b"]},
        {"name": "b", "taskRef": {"name": "tekscore-build-image"}, "runAfter": ["a"]},
        {"name": "c", "taskRef": {"name": "tekscore-build-image"}},
    ]
    with pytest.raises(PlanError, match=r"the tasks a, b wait for each other"):
        plan_of({"spec": {"tasks": tasks}})
    with pytest.raises(PlanError, match="runs after 'x', which is no task"):
        plan_of({"spec": {"tasks": [{"name": "a", "runAfter": ["x"]}]}})


def test_build_resources_pass_tekton_lint(tmp_path: Path) -> None:
    lint = shutil.which("tekton-lint")
    if lint is None:
        pytest.skip("tekton-lint is not on PATH: `make tools` installs @ibm/tekton-lint")
    objects = template(PLATFORM_CHART, tmp_path=tmp_path, release="tekscore", extra=ALL_ON)
    folder = tmp_path / "build"
    folder.mkdir()
    for obj in objects:
        if obj.get("kind") in ("Pipeline", "Task"):
            (folder / f"{obj['kind']}-{obj['metadata']['name']}.yaml").write_text(dumps(obj))
    proc = subprocess.run(
        [lint, f"{folder}/*.yaml"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in proc.stdout, proc.stdout


def test_platform_plan_command(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("scoring-server-pmml: {enabled: true}\nimage: {tag: '2.0'}\n")
    env = {**os.environ, "PATH": f"{ROOT / '.tools' / 'bin'}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [str(TEKSCORE), "platform", "plan", str(values), "--chart", str(PLATFORM_CHART)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "tekscore-platform-build: registry ghcr.io/tekscore, tag 2.0",
        "  1. build-tekscore: build ghcr.io/tekscore/tekscore:2.0 from Dockerfile",
        "  2. build-tekscore-pmml: build ghcr.io/tekscore/tekscore-pmml:2.0 from "
        "docker/pmml.Dockerfile --build-arg=BASE_IMAGE=ghcr.io/tekscore/tekscore:2.0 "
        "(after build-tekscore)",
        "  3. tekscore-pmml-check: Task tekscore-pmml-check on "
        "ghcr.io/tekscore/tekscore-pmml:2.0 (after build-tekscore-pmml)",
        "  4. deploy: helm upgrade the platform to the images built (after build-tekscore-pmml, "
        "tekscore-pmml-check, build-tekscore)",
        "images:",
        "  ghcr.io/tekscore/tekscore:2.0",
        "  ghcr.io/tekscore/tekscore-pmml:2.0",
    ]
    command = [str(TEKSCORE), "platform", "plan", str(values), "--chart", str(PLATFORM_CHART)]
    as_json = subprocess.run(
        [*command, "--registry", "registry.local:5000/ml", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert json.loads(as_json.stdout)["images"] == [
        "registry.local:5000/ml/tekscore:2.0",
        "registry.local:5000/ml/tekscore-pmml:2.0",
    ]


def test_the_data_channel_registry_is_what_the_scheduler_reads(tmp_path: Path) -> None:
    values = tmp_path / "channels.yaml"
    values.write_text(
        "data-channel:\n"
        "  enabled: true\n"
        "  channels:\n"
        "    shared-scores: {direction: sink, type: file, config: {path: /data/scores.jsonl}}\n"
        "    events: {direction: source, type: kafka, config: {bootstrapServers: 'k:9092',"
        " topic: events}}\n"
    )
    objects = template(
        PLATFORM_CHART, tmp_path=tmp_path, release="tekscore", extra=["-f", str(values)]
    )
    config = by_kind(objects, "ConfigMap")["tekscore-channels"]
    folder = tmp_path / "registry"
    folder.mkdir()
    for name, text in config["data"].items():
        (folder / name).write_text(text)
    registry = ir.load_registry(folder)
    assert sorted(d.name for d in registry) == ["events", "shared-scores"]
    (container,) = by_kind(objects, "Deployment")["tekscore"]["spec"]["template"]["spec"][
        "containers"
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TEKSCORE_CHANNELS"] == "/etc/tekscore-channels"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["channels"] == "/etc/tekscore-channels"
    for obj in objects:
        if not obj["apiVersion"].startswith("tekton.dev/"):
            validate_builtin(obj)


def test_fastscore_descriptors_and_schemas_go_into_the_registry_verbatim(tmp_path: Path) -> None:
    """A FastScore user's descriptor and .avsc files, given with --set-file as they are, and a
    descriptor written in the values, are registry channels (docs/compatibility.md)."""
    kafka_out = tmp_path / "kafka-out.json"
    kafka_out.write_text(
        '{\n  "Transport": {"Type": "kafka", "BootstrapServers": ["kafka:9092"],'
        ' "Topic": "scored"},\n  "Encoding": "avro-binary",\n  "Schema": {"$ref": "outputsch"}\n}\n'
    )
    avsc = tmp_path / "outputsch.avsc"
    avsc.write_text(
        json.dumps(
            {
                "type": "record",
                "name": "Scored",
                "fields": [
                    {"name": "id", "type": {"type": "long"}},
                    {"name": "p", "type": "double"},
                ],
            }
        )
    )
    values = tmp_path / "descriptors.yaml"
    values.write_text(
        "data-channel:\n"
        "  enabled: true\n"
        "  descriptors:\n"
        "    customers:\n"
        "      Transport: {Type: S3, Bucket: shop, ObjectKey: in/customers.jsons}\n"
        "      Encoding: JSON\n"
    )
    set_files = [
        "--set-file",
        f"data-channel.descriptors.kafka-out={kafka_out}",
        "--set-file",
        f"data-channel.schemas.outputsch={avsc}",
    ]
    objects = template(
        PLATFORM_CHART,
        tmp_path=tmp_path,
        release="tekscore",
        extra=["-f", str(values), *set_files],
    )
    data = by_kind(objects, "ConfigMap")["tekscore-channels"]["data"]
    assert sorted(data) == ["customers.json", "kafka-out.json", "outputsch.avsc"]
    assert data["kafka-out.json"] == kafka_out.read_text()  # verbatim
    folder = tmp_path / "registry"
    folder.mkdir()
    for name, text in data.items():
        (folder / name).write_text(text)
    registry = {d.name: d.doc.spec for d in ir.load_registry(folder)}
    assert sorted(registry) == ["customers", "kafka-out"]
    out = registry["kafka-out"]
    assert (out.type, out.config.topic, out.format.encoding) == ("kafka", "scored", "avro")
    assert [(f.name, f.type) for f in out.format.schema_ or []] == [("id", "long"), ("p", "double")]
    customers = registry["customers"]
    assert (customers.type, customers.config.bucket, customers.config.key) == (
        "s3",
        "shop",
        "in/customers.jsons",
    )
    helm("lint", "--strict", PLATFORM_CHART, "-f", str(values), *set_files)


def _names(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objects}


def test_the_scheduling_server_is_a_part_that_can_be_left_out(tmp_path: Path) -> None:
    """`scheduling-server.enabled: false` leaves out exactly the scheduler's objects (its
    Deployment, Service, ServiceAccount, globals and RBAC); the jobs' Pipeline, Tasks, task
    ServiceAccount and RBAC stay, and the render still lints and validates."""
    whole = _names(template(PLATFORM_CHART, tmp_path=tmp_path, release="tekscore"))
    off = ["--set", "scheduling-server.enabled=false"]
    helm("lint", "--strict", PLATFORM_CHART, *off)
    without = template(PLATFORM_CHART, tmp_path=tmp_path, release="tekscore", extra=off)
    assert whole - _names(without) == {
        ("Deployment", "tekscore"),
        ("Service", "tekscore"),
        ("ServiceAccount", "tekscore"),
        ("ConfigMap", "tekscore-globals"),
        ("Role", "tekscore-scheduler"),
        ("RoleBinding", "tekscore-scheduler"),
    }
    assert _names(without) < whole
    assert ("Pipeline", "tekscore-scoring-job") in _names(without)
    for obj in without:
        if not obj["apiVersion"].startswith("tekton.dev/"):
            validate_builtin(obj)


def test_the_test_data_server_serves_the_samples_of_its_configmap(tmp_path: Path) -> None:
    """The test-data sub-chart's objects validate; the Deployment's own command line, run here
    on the folder its ConfigMap's data would be mounted as, serves the samples as written."""
    sample = '{"id": 1, "sepal_length": 5.1}\n{"id": 2, "sepal_length": 4.9}\n'
    (tmp_path / "iris.jsonl").write_text(sample)
    on = [
        "--set",
        "test-data.enabled=true",
        "--set-file",
        f"test-data.samples.iris={tmp_path / 'iris.jsonl'}",
    ]
    helm("lint", "--strict", PLATFORM_CHART, *on)
    objects = template(PLATFORM_CHART, tmp_path=tmp_path, release="tekscore", extra=on)
    mine = [o for o in objects if o["metadata"]["name"] == "tekscore-test-data"]
    assert sorted(o["kind"] for o in mine) == ["ConfigMap", "Deployment", "Service"]
    for obj in mine:
        validate_builtin(obj)
    ((_, pod),) = [p for p in pod_specs(mine)]
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    folder = tmp_path / "mounted"
    folder.mkdir()
    for key, text in by_kind(mine, "ConfigMap")["tekscore-test-data"]["data"].items():
        (folder / key).write_text(text)
    args = [str(a) for a in container["args"]]
    assert args[args.index("--samples") + 1] == mounts["samples"]
    args[args.index("--samples") + 1] = str(folder)
    args[args.index("--host") + 1] = "127.0.0.1"
    port = free_port()
    args[args.index("--port") + 1] = str(port)
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([str(TEKSCORE), *args], stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"

        def served() -> httpx.Response | None:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return httpx.get(f"{base}/samples/iris", timeout=5)
            except httpx.TransportError:
                return None

        answer = wait_until(served, what="the test-data server")
        assert answer.status_code == 200
        assert answer.text == sample
        assert httpx.get(f"{base}/", timeout=5).json() == {"samples": ["iris"], "sinks": {}}
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
