"""Helpers of the chart tests: run helm, build values files from IR text, validate objects.

Does I/O: runs the helm binary (found with `shutil.which`) and reads the bundled Kubernetes and
Tekton schemas. Shared by tests/charts and tests/tekton.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

import ir

ROOT = Path(__file__).resolve().parents[2]
SCORING_CHART = ROOT / "charts" / "scoring-pipeline"
PLATFORM_CHART = ROOT / "charts" / "tekscore"
MANIFESTS = ROOT / "tekton" / "manifests"
TEKTON_SCHEMAS = Path(__file__).parents[2].parent / "shared" / "schemas" / "tekton"
K8S_VERSION = "1.31"
"""The Kubernetes version rendered objects are validated against (bundled by kubernetes-validate)."""


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def helm_binary() -> str:
    """The helm on PATH, or skip the test saying how to get it."""
    helm = shutil.which("helm")
    if helm is None:
        pytest.skip("helm is not on PATH: `make tools` installs it into .tools/bin (DESIGN.md 8)")
    return helm


def helm(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm with `args`; with `check`, fail the test showing helm's output."""
    proc = subprocess.run(
        [helm_binary(), *map(str, args)], capture_output=True, text=True, timeout=120
    )
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def template(
    chart: Path,
    values: Mapping[str, Any] | None = None,
    *,
    tmp_path: Path,
    release: str = "r",
    extra: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """`helm template` of `chart` with `values` (written to a file); the rendered objects."""
    args: list[str | Path] = ["template", release, chart, "--namespace", "jobs", *extra]
    if values is not None:
        path = tmp_path / f"values-{release}.yaml"
        path.write_text(yaml.safe_dump(dict(values), sort_keys=True), encoding="utf-8")
        args += ["-f", path]
    out = helm(*args).stdout
    return [doc for doc in yaml.load_all(out, Loader=_LOADER) if doc]


def render_ir(files: Mapping[str, str], *, base_dir: Path, **kwargs: Any) -> dict[str, Any]:
    """Pre-process IR given as text into the values tree (what the chart renders)."""
    docs = ir.load_texts(dict(files), base_dir=base_dir)
    return ir.preprocess(docs, **kwargs).values


def values_of_paths(paths: Sequence[Path]) -> dict[str, Any]:
    """Pre-process IR files (like `tekscore render`) into the values tree."""
    return ir.preprocess(ir.load_paths(list(paths))).values


@functools.cache
def _cache_k8s_schemas() -> None:
    """kubernetes-validate re-reads its (large) definitions file on every call; read it once.

    Patches `kubernetes_validate.utils.schema_contents` (pure: file name -> parsed JSON) with a
    memoised version: 15x faster over the hundreds of objects of the large pipeline.
    """
    module = sys.modules[kubernetes_validate.validate.__module__]
    module.schema_contents = functools.cache(module.schema_contents)  # type: ignore[attr-defined]


def validate_builtin(obj: Mapping[str, Any]) -> None:
    """Validate one built-in Kubernetes object, strictly (unknown fields are errors)."""
    _cache_k8s_schemas()
    try:
        kubernetes_validate.validate(dict(obj), K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(map(str, exc.path)) if hasattr(exc, "path") else ""
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        pytest.fail(f"{name}: {where}: {exc.message if hasattr(exc, 'message') else exc}")


def pod_specs(objects: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every Pod, Deployment and Job in `objects`."""
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "Pod":
            yield name, obj["spec"]
        elif obj["kind"] in ("Deployment", "Job"):
            yield name, obj["spec"]["template"]["spec"]


def service_host(values: Mapping[str, Any], name: str) -> str:
    """The chart's Service name of a python scoring service, `<job.id>-<name>` cut to 63 without
    trailing dashes: where its logical endpoint resolves to, `http://<this>:<port>`."""
    return f"{values['job']['id']}-{name}"[:63].rstrip("-")


def by_kind(objects: Sequence[Mapping[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """The objects of one kind by name."""
    return {o["metadata"]["name"]: dict(o) for o in objects if o["kind"] == kind}


# --- Tekton CRD schemas ----------------------------------------------------------------------


def _close(node: Any) -> Any:
    """`node` with `additionalProperties: false` wherever it has `properties` and does not
    preserve unknown fields (shared/schemas/tekton/README.md)."""
    if isinstance(node, dict):
        out = {k: _close(v) for k, v in node.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_close(v) for v in node]
    return node


@functools.cache
def tekton_schema(kind: str) -> dict[str, Any]:
    """The closed v1 openAPIV3Schema of a Tekton kind (Pipeline, Task, PipelineRun, TaskRun)."""
    if not TEKTON_SCHEMAS.is_dir():
        pytest.skip(
            f"Tekton CRD schemas not found at {TEKTON_SCHEMAS} (shared/ is not beside the checkout)"
        )
    crd = yaml.safe_load((TEKTON_SCHEMAS / f"{kind.lower()}.yaml").read_text(encoding="utf-8"))
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    closed: dict[str, Any] = _close(copy.deepcopy(v1["schema"]["openAPIV3Schema"]))
    return closed


def tekton_errors(doc: Mapping[str, Any]) -> list[str]:
    """Every schema error of one Tekton v1 document (embedded specs validated too)."""
    assert doc.get("apiVersion") == "tekton.dev/v1", doc.get("apiVersion")
    kind = str(doc["kind"])
    errors = [
        f"{kind}/{doc.get('metadata', {}).get('name')}: {'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft7Validator(tekton_schema(kind)).iter_errors(dict(doc))
    ]
    spec = doc.get("spec") or {}
    embedded = {"PipelineRun": ("pipelineSpec", "Pipeline"), "TaskRun": ("taskSpec", "Task")}
    if kind in embedded and embedded[kind][0] in spec:
        field, inner = embedded[kind]
        wrapped = {
            "apiVersion": "tekton.dev/v1",
            "kind": inner,
            "metadata": {"name": "embedded"},
            "spec": spec[field],
        }
        errors += [f"spec.{field}: {e}" for e in tekton_errors(wrapped)]
    if kind == "PipelineRun" and spec.get("status", "") not in (
        "",
        "Cancelled",
        "CancelledRunFinally",
        "StoppedRunFinally",
        "PipelineRunPending",
    ):
        errors.append(f"PipelineRun: spec.status: invalid value {spec['status']!r}")
    return errors


def load_manifests() -> list[dict[str, Any]]:
    """Every document of tekton/manifests/*.yaml."""
    docs: list[dict[str, Any]] = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def dumps(obj: Any) -> str:
    """Canonical JSON of `obj` (for comparisons in failure messages)."""
    return json.dumps(obj, indent=2, sort_keys=True)
