"""Pre-processing, the end of step 4: the merged definitions assembled into the values shape.

Pure, no I/O. Models are inlined into their services; each service's runtime is checked, or
chosen when left out, against the enabled runtimes (`ir.runtimes`); one service is derived for
every model no service serves, on the first runtime that serves its type, with the model's
`resources` (e.g. a Racetrack manifest's); each score step gets its service (named, or the only
one serving its model); each flow lists the endpoints it calls and the Secret keys its channels
reference.

Endpoints are logical: a service of ours is its name and `SERVICE_PORT`, and a flow names the
service and port it calls; whoever runs the job resolves them to URLs (the chart to its
Services, the local runner to loopback ports). Nothing here knows how a runner names things.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ir.collect import Collected, Entry
from ir.errors import Issue
from ir.loader import clean_loc
from ir.lookup import ResolvedFlow, dump
from ir.runtimes import BUILTIN_RUNTIMES, EXTERNAL, RuntimeValues, choose, describe, serving
from ir.values import FlowValues, ServiceValues

SERVICE_PORT = 8080
"""The port of every python scoring service (the chart's Service and container listen on it)."""


def assemble(
    collected: Collected,
    tree: Mapping[str, Any],
    flows: list[ResolvedFlow],
    *,
    job: Mapping[str, Any],
    runtimes: Mapping[str, RuntimeValues] = BUILTIN_RUNTIMES,
) -> tuple[dict[str, Any], list[Issue]]:
    """The values tree (without `global` and `contentHash`) from the merged definitions."""
    issues: list[Issue] = []
    models: Mapping[str, Any] = tree.get("models", {})
    member_models = [e.name for e in collected.members.get("Model", [])]
    services: dict[str, dict[str, Any]] = {}
    for entry in collected.members.get("ScoringService", []):
        spec = dict(tree["scoringServices"][entry.name])
        inlined = []
        for i, model in enumerate(spec["models"]):
            if model not in models:
                known = ", ".join(sorted(models)) or "(none)"
                issues.append(
                    entry.where.issue(("models", i), f"unknown model {model!r}; known: {known}")
                )
                continue
            inlined.append({**models[model], "name": model})
        if spec.get("runtime") != EXTERNAL:
            runtime, runtime_issues = _service_runtime(entry, spec, inlined, runtimes)
            issues += runtime_issues
            spec["runtime"] = runtime
            spec["port"] = SERVICE_PORT
        services[entry.name] = {**spec, "name": entry.name, "models": inlined, "derived": False}
    served = {m["name"] for s in services.values() for m in s["models"]}
    unservable: set[str] = set()  # reported at the model: their score steps say nothing more
    for name in member_models:
        if name in served:
            continue
        model = models[name]
        if name in services:
            where = collected.first("Model", name)
            assert where is not None
            issues.append(
                where.where.issue(
                    (),
                    f"model {name!r} has no service and a service named {name!r} "
                    "exists: add the model to a service's models",
                )
            )
            continue
        external = model["type"] == EXTERNAL
        chosen = EXTERNAL if external else choose([model["type"]], runtimes)
        if chosen is None:
            where = collected.first("Model", name)
            assert where is not None
            issues.append(
                where.where.issue(
                    ("type",),
                    f"model {name!r} has type {model['type']!r} and no enabled scoring server "
                    f"serves it; the runtimes are: {describe(runtimes)}",
                )
            )
            unservable.add(name)
            continue
        services[name] = {
            "name": name,
            "runtime": chosen,
            **({"url": model["uri"]} if external else {"port": SERVICE_PORT}),
            "models": [{**model, "name": name}],
            "derived": True,
            **({"resources": model["resources"]} if model.get("resources") else {}),
        }
    serving: dict[str, list[str]] = {}
    for name in sorted(services):
        for model in services[name]["models"]:
            serving.setdefault(model["name"], []).append(name)
    out_flows = []
    for flow in flows:
        data, flow_issues = _resolve_steps(flow, services, serving, unservable)
        issues += flow_issues
        if flow_issues:
            continue
        try:
            data = dump(FlowValues.model_validate(data))
        except ValidationError as exc:
            for error in exc.errors():
                loc = clean_loc(data, error["loc"])
                issues.append(flow.issue(loc, str(error["msg"]).removeprefix("Value error, ")))
            continue
        shared = _one_output_for_replicas(data)
        if shared:
            issues.append(flow.issue(("replicas",), shared))
            continue
        out_flows.append(data)
    if not collected.members.get("ScoringFlow"):
        issues.append(
            collected.pipeline.where.issue(("spec",), "a pipeline needs at least one scoring flow")
        )
    values = {
        "job": dict(job),
        "scoringServices": [
            dump(ServiceValues.model_validate(services[n]))
            for n in sorted(services)
            if services[n]["models"]  # none left: each was unknown, reported above
        ],
        "scoringFlows": sorted(out_flows, key=lambda f: f["name"]),
    }
    return values, issues


def _service_runtime(
    entry: Entry,
    spec: Mapping[str, Any],
    models: list[dict[str, Any]],
    runtimes: Mapping[str, RuntimeValues],
) -> tuple[str, list[Issue]]:
    """The runtime of a service of ours: the one it names, checked against its models' types,
    or the first enabled one that serves them all."""
    issues: list[Issue] = []
    for i, model in enumerate(models):
        if model["type"] == EXTERNAL:
            issues.append(
                entry.where.issue(
                    ("models", i),
                    f"model {model['name']!r} is external (its own OIP server at its uri): "
                    "it needs no scoring service",
                )
            )
    models = [m for m in models if m["type"] != EXTERNAL]
    named = spec.get("runtime")
    if named is not None:
        if named not in runtimes:
            issues.append(
                entry.where.issue(
                    ("runtime",),
                    f"runtime {named!r} is not enabled; the runtimes are: {describe(runtimes)}",
                )
            )
            return str(named), issues
        for model in models:
            if model["type"] not in runtimes[named].supported_models:
                others = ", ".join(serving(model["type"], runtimes)) or "no enabled runtime"
                issues.append(
                    entry.where.issue(
                        ("runtime",),
                        f"runtime {named!r} does not serve model {model['name']!r} of type "
                        f"{model['type']!r} (served by: {others})",
                    )
                )
        return str(named), issues
    chosen = choose((m["type"] for m in models), runtimes)
    if chosen is None and models:
        by = "; ".join(
            f"{m['name']!r} ({m['type']}) by {', '.join(serving(m['type'], runtimes)) or 'none'}"
            for m in models
        )
        issues.append(
            entry.where.issue(
                ("models",),
                f"no enabled scoring server serves every model of this service: {by}; the "
                f"runtimes are: {describe(runtimes)}; put models of different runtimes in "
                "different services",
            )
        )
    return chosen or next(iter(runtimes), "python"), issues


_ONE_OUTPUT = ("file", "s3", "test-data")  # sinks that write one named output per process


def _one_output_for_replicas(flow: dict[str, Any]) -> str | None:
    """Why a streaming flow's replicas cannot share its sinks, if they cannot: every replica
    would write, then replace, the same file or object (batch shards each get their own name;
    replicas of a streaming flow have no stable index on Kubernetes)."""
    if flow["mode"] != "streaming" or flow["replicas"] <= 1:
        return None
    for key in ("sink", "dead_letter"):
        channel = flow.get(key)
        if channel is not None and channel["type"] in _ONE_OUTPUT:
            return (
                f"{flow['replicas']} replicas of a streaming flow would all write the one "
                f"{channel['type']} output of its {key.replace('_', '-')} {channel['name']!r}; "
                "use one replica, a Kafka sink, or a batch flow with shards (one output each)"
            )
    return None


def _resolve_steps(
    flow: ResolvedFlow,
    services: Mapping[str, Mapping[str, Any]],
    serving_index: Mapping[str, list[str]],
    unservable: set[str],
) -> tuple[dict[str, Any], list[Issue]]:
    data = dict(flow.data)
    issues: list[Issue] = []
    steps = []
    used: dict[str, dict[str, Any]] = {}
    for i, step in enumerate(data.get("steps", [])):
        if step.get("type") != "score":
            steps.append(step)
            continue
        model = step["model"]
        serving = serving_index.get(model, [])
        chosen = step.get("service")
        if chosen is not None and chosen not in serving:
            msg = (
                f"service {chosen!r} does not serve model {model!r}"
                if chosen in services
                else f"unknown scoring service {chosen!r}; known: {_names(services)}"
            )
            issues.append(flow.issue(("steps", i, "service"), msg))
            continue
        if chosen is None:
            if not serving and model in unservable:
                continue  # the model's own issue says why; the render fails on it
            if not serving:
                issues.append(
                    flow.issue(
                        ("steps", i, "model"),
                        f"no scoring service of the pipeline serves model {model!r}",
                    )
                )
                continue
            if len(serving) > 1:
                issues.append(
                    flow.issue(
                        ("steps", i, "model"),
                        f"several services serve model {model!r} ({', '.join(serving)}): "
                        "name one with `service`",
                    )
                )
                continue
            chosen = serving[0]
        svc = services[chosen]
        target = (
            {"url": svc["url"]}
            if svc["runtime"] == EXTERNAL
            else {"service": chosen, "port": svc["port"]}
        )
        used[chosen] = {
            **target,
            "protocol": "v2" if svc["runtime"] == EXTERNAL else "records",
            "models": sorted(m["name"] for m in svc["models"]),
        }
        steps.append({**step, "service": chosen})
    data["steps"] = steps
    data["services"] = used
    data["secrets"] = secret_refs(data)
    return data, issues


def secret_refs(node: Any) -> list[dict[str, str]]:
    """Every `{secretRef: {name, key}}` below `node`, sorted and unique."""
    found: set[tuple[str, str]] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            ref = value.get("secretRef")
            if isinstance(ref, dict) and set(value) == {"secretRef"}:
                found.add((str(ref.get("name")), str(ref.get("key"))))
                return
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk({k: v for k, v in node.items() if k in ("source", "sink", "deadLetter")})
    return [{"name": n, "key": k} for n, k in sorted(found)]


def _names(names: Any) -> str:
    return ", ".join(sorted(names)) or "(none)"
