"""Pre-processing step 3: apply pipeline parameters to flows.

Pure, no I/O. `${name}` in any string of a resolved flow is replaced by the parameter's value:
a string that is exactly `${name}` takes the typed value (so `batchSize: ${bs}` becomes an
integer), a `${name}` inside a longer string is formatted (booleans as `true`/`false`). `$${`
writes a literal `${`. Values come from the job's overrides, else the pipeline's defaults; they
are data: nothing is evaluated or templated. Inline channel records are data and are left alone.
Unknown references, unknown overrides, ill-typed values and missing required parameters are
errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ir.collect import Entry
from ir.errors import Issue, Loc
from ir.lookup import ResolvedFlow

Scalar = str | int | float | bool
_REF = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_WHOLE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}$")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
PARAMETERS_FILE = "<parameters>"


def coerce(value: Any, type_: str) -> Scalar:
    """`value` as the declared type; strings (from `-p k=v`) are parsed; ValueError if not."""
    if type_ == "string":
        if isinstance(value, str):
            return value
        raise ValueError(f"expected a string, got {value!r}")
    if type_ == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError(f"expected a boolean (true/false), got {value!r}")
    if isinstance(value, bool):
        raise ValueError(
            f"expected {'an integer' if type_ == 'integer' else 'a number'}, got {value!r}"
        )
    if type_ == "integer":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    else:
        raise ValueError(f"expected a number, got {value!r}")
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def resolve_parameters(
    pipeline: Entry, overrides: Mapping[str, Any]
) -> tuple[dict[str, Scalar], list[Issue]]:
    """The value of every declared parameter: override, else default; issues for the rest."""
    declared = pipeline.spec.parameters
    values: dict[str, Scalar] = {}
    issues: list[Issue] = []
    for name in sorted(overrides):
        if name not in declared:
            known = ", ".join(sorted(declared)) or "(none)"
            issues.append(
                Issue(PARAMETERS_FILE, None, (name,), f"unknown parameter; declared: {known}")
            )
    for name in sorted(declared):
        spec = declared[name]
        loc: Loc = ("spec", "parameters", name)
        if name in overrides:
            try:
                values[name] = coerce(overrides[name], spec.type)
            except ValueError as exc:
                issues.append(Issue(PARAMETERS_FILE, None, (name,), str(exc)))
        elif spec.default is not None:
            try:
                values[name] = coerce(spec.default, spec.type)
            except ValueError as exc:
                issues.append(pipeline.where.issue((*loc, "default"), str(exc)))
        else:
            issues.append(
                pipeline.where.issue(
                    loc, "required parameter has no value: give it with -p or in the request"
                )
            )
    return values, issues


def _format(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def substitute(value: str, params: Mapping[str, Scalar]) -> tuple[Any, list[str]]:
    """`value` with its references replaced; the names it references that are not declared."""
    whole = _WHOLE.match(value)
    if whole:
        name = whole.group(1)
        return (params[name], []) if name in params else (value, [name])
    unknown: list[str] = []

    def repl(match: re.Match[str]) -> str:
        if match.group(1):  # $${name}: a literal ${name}
            return match.group(0)[1:]
        name = match.group(2)
        if name not in params:
            unknown.append(name)
            return match.group(0)
        return _format(params[name])

    return _REF.sub(repl, value), unknown


def _walk(node: Any, loc: Loc, params: Mapping[str, Scalar], found: list[tuple[Loc, str]]) -> Any:
    if isinstance(node, str):
        out, unknown = substitute(node, params)
        found.extend((loc, name) for name in unknown)
        return out
    if isinstance(node, dict):
        return {
            k: v if _is_inline_records(loc, k) else _walk(v, (*loc, k), params, found)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_walk(v, (*loc, i), params, found) for i, v in enumerate(node)]
    return node


def _is_inline_records(loc: Loc, key: str) -> bool:
    return key == "records" and len(loc) == 2 and loc[1] == "config"


def apply_parameters(
    flows: list[ResolvedFlow], params: Mapping[str, Scalar], declared: Mapping[str, Any]
) -> tuple[list[ResolvedFlow], list[Issue]]:
    """Every flow with `${...}` replaced; an issue per reference to an undeclared parameter."""
    out: list[ResolvedFlow] = []
    issues: list[Issue] = []
    known = ", ".join(sorted(declared)) or "(none)"
    for flow in flows:
        found: list[tuple[Loc, str]] = []
        data = _walk(flow.data, (), params, found)
        for loc, name in found:
            if name not in declared:  # declared-but-missing is reported once, by resolve_parameters
                issues.append(flow.issue(loc, f"unknown parameter ${{{name}}}; declared: {known}"))
        ok = flow.ok and not any(name not in declared for _, name in found)
        out.append(ResolvedFlow(flow.entry, data, dict(flow.origins), ok))
    return out, issues
