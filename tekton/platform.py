"""The platform build plan: the `tekscore-platform-build` Pipeline the platform chart renders from
its enabled sub-charts' build steps, read back as stages, tasks and the images they produce.

`plan_of` is pure (a Pipeline manifest in, a `Plan` out); `render_build_pipeline` renders the
chart with pyhelm3 (helm template: files, no cluster). The order is Tekton's: a task runs once
every task of its `runAfter` is done, so stage N holds the tasks whose longest chain of
dependencies has N-1 tasks. A cycle or a `runAfter` naming no task is a `PlanError` listing
every problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PIPELINE = "tekscore-platform-build"
BUILDER_TASK = "tekscore-build-image"
DEPLOY_TASK = "tekscore-platform-deploy"
_PARAM = re.compile(r"\$\(params\.([a-z0-9-]+)\)")


class PlanError(Exception):
    """The build pipeline cannot run as rendered; `problems` lists why."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class PlannedTask:
    """One task of the build: an image build, a sub-chart's own step, or the deploy."""

    name: str
    task: str
    after: tuple[str, ...]
    image: str | None = None
    dockerfile: str | None = None
    build_args: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        if self.task == BUILDER_TASK:
            return "build"
        return "deploy" if self.task == DEPLOY_TASK else "custom"


@dataclass(frozen=True)
class Plan:
    """The tasks of the build pipeline in stages (each stage after the previous ones)."""

    params: dict[str, str]
    stages: list[list[PlannedTask]] = field(default_factory=list)

    @property
    def images(self) -> list[str]:
        """The images the build pushes, in build order."""
        return [t.image for s in self.stages for t in s if t.kind == "build" and t.image]


def _substitute(text: str, params: Mapping[str, str]) -> str:
    return _PARAM.sub(lambda m: params.get(m.group(1), m.group(0)), text)


def plan_of(pipeline: Mapping[str, Any], overrides: Mapping[str, str] | None = None) -> Plan:
    """The plan of a rendered build Pipeline; `overrides` replace param defaults (registry, tag)."""
    spec = pipeline.get("spec", {})
    params = {p["name"]: str(p.get("default", "")) for p in spec.get("params", [])}
    params.update(overrides or {})
    tasks: dict[str, PlannedTask] = {}
    for raw in spec.get("tasks", []):
        values = {p["name"]: p.get("value") for p in raw.get("params", [])}
        image = values.get("image")
        args = values.get("extra-args") or []
        tasks[raw["name"]] = PlannedTask(
            name=raw["name"],
            task=raw.get("taskRef", {}).get("name", ""),
            after=tuple(raw.get("runAfter", [])),
            image=_substitute(str(image), params) if image is not None else None,
            dockerfile=values.get("dockerfile"),
            build_args=tuple(_substitute(str(a), params) for a in args),
        )
    return Plan(params=params, stages=_stages(tasks))


def _stages(tasks: Mapping[str, PlannedTask]) -> list[list[PlannedTask]]:
    problems = [
        f"task {t.name!r} runs after {a!r}, which is no task of the pipeline"
        for t in tasks.values()
        for a in t.after
        if a not in tasks
    ]
    if problems:
        raise PlanError(problems)
    depth: dict[str, int] = {}
    remaining = dict(tasks)
    while remaining:
        ready = [n for n, t in remaining.items() if all(a in depth for a in t.after)]
        if not ready:
            cycle = ", ".join(sorted(remaining))
            raise PlanError([f"the tasks {cycle} wait for each other (a cycle of runAfter)"])
        for name in ready:
            depth[name] = 1 + max((depth[a] for a in tasks[name].after), default=0)
            del remaining[name]
    stages: list[list[PlannedTask]] = [[] for _ in range(max(depth.values(), default=0))]
    for name in sorted(depth):
        stages[depth[name] - 1].append(tasks[name])
    return stages


def find_pipeline(manifests: Iterable[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The build Pipeline among rendered manifests."""
    for doc in manifests:
        if doc.get("kind") == "Pipeline" and doc.get("metadata", {}).get("name") == PIPELINE:
            return doc
    raise PlanError([f"the chart rendered no Pipeline {PIPELINE}"])


async def render_build_pipeline(
    chart: Path, values: Sequence[Mapping[str, Any]], *, helm: str = "helm"
) -> Mapping[str, Any]:
    """`helm template` of the platform chart with the platform build on (I/O: runs helm)."""
    from pyhelm3 import Client
    from pyhelm3 import errors as helm_errors

    client = Client(executable=helm)
    build_on = {"global": {"platformBuild": {"enabled": True}}}
    try:
        loaded = await client.get_chart(chart)
        manifests = await client.template_resources(loaded, "tekscore", *values, build_on)
    except helm_errors.Error as exc:
        raise PlanError([f"helm cannot render {chart}: {str(exc).strip()}"]) from exc
    return find_pipeline(manifests)


def subchart_values_schema(name: str) -> dict[str, Any]:
    """The values.schema.json of the platform sub-chart `name`: `enabled`, `build.steps`; for a
    scoring server (`scoring-server-*`) `supportedModels` (model types of the IR) and `image`;
    for `data-channel` its `channels` (DataChannel specs by name, checked by the IR) and FastScore
    `descriptors` and their `schemas` (each an object, or a file's text from --set-file);
    for `test-data` its `samples` (text by name), `maxBytes` and `resources`."""
    from typing import get_args

    from ir.documents import ModelType

    label = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 57}
    step = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "image"],
        "properties": {
            "name": {**label, "description": "The step's name, unique in the platform."},
            "image": {**label, "description": "The image's name under the build registry."},
            "context": {"type": "string", "description": "Build context in the checkout."},
            "dockerfile": {"type": "string", "description": "Dockerfile in the checkout."},
            "after": {"type": "array", "items": label, "description": "Steps built first."},
            "baseImage": {**label, "description": "The step whose image is BASE_IMAGE."},
            "buildArgs": {"type": "object", "additionalProperties": {"type": "string"}},
            "taskRef": {**label, "description": "A Task of this chart run instead of a build."},
        },
    }
    properties: dict[str, Any] = {
        "enabled": {"type": "boolean"},
        "global": {"type": "object"},
        "build": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"steps": {"type": "array", "items": step}},
        },
    }
    if name == "data-channel":
        channel = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
        verbatim: list[tuple[str, str, str, str]] = [
            ("channels", channel, "object", ""),  # DataChannel specs (the IR checks them)
            (
                "descriptors",
                channel,
                "object,string",
                "FastScore stream descriptors by channel name (docs/compatibility.md): the "
                "descriptor, or its file's text (--set-file).",
            ),
            (
                "schemas",
                "^[A-Za-z0-9]([-_.A-Za-z0-9]{0,61}[A-Za-z0-9])?$",
                "object,string",
                "The Avro schemas the descriptors' Schema names, by name: the schema, or its "
                ".avsc text (--set-file).",
            ),
        ]
        for key, pattern, types, description in verbatim:
            kinds = types.split(",")
            properties[key] = {
                "type": "object",
                **({"description": description} if description else {}),
                "propertyNames": {"pattern": pattern},
                "additionalProperties": {"type": kinds[0] if len(kinds) == 1 else kinds},
            }
    if name == "test-data":
        properties["samples"] = {
            "type": "object",
            "propertyNames": {"pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
            "additionalProperties": {"type": "string"},
        }
        properties["maxBytes"] = {"type": "integer", "minimum": 1}
        properties["resources"] = {"type": "object"}
    if name.startswith("scoring-server-"):
        properties["supportedModels"] = {
            "type": "array",
            "minItems": 1,
            "items": {"enum": [t for t in get_args(ModelType) if t != "external"]},
        }
        properties["image"] = {"type": "string"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
