"""Pre-processing step 2: look up each flow's source, sink and dead-letter channel by name
(and, once parameters are applied, make their relative paths absolute: `resolve_paths`).

Pure, no I/O. Names resolve against the IR's DataChannels first, then the server's channel
registry; an unknown name lists the known ones; a channel used against its direction is an
error, except for a channel made from a FastScore stream descriptor (annotation
`tekscore.dev/direction: any`), which serves as a source or a sink, whichever the flow names it
as; a looping source (`config.loop`) needs a streaming flow. The result is, per flow, its spec
as a dict with the channel specs inlined, plus where each inlined channel came from (for
positions in later errors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ir.channels import ChannelSpec
from ir.collect import Collected, Entry, Where, resolve_path, resolve_uri
from ir.errors import Issue
from ir.fastscore import ANY_DIRECTION

CHANNEL_FIELDS = (("source", "source"), ("sink", "sink"), ("deadLetter", "sink"))
_CHANNEL: TypeAdapter[ChannelSpec] = TypeAdapter(ChannelSpec)


def any_direction(entry: Entry) -> bool:
    """Whether a standalone channel document says it serves either direction."""
    if entry.where.loc != ("spec",):
        return False
    metadata = getattr(entry.where.src.doc, "metadata", None)
    return getattr(metadata, "annotations", {}).get(ANY_DIRECTION) == "any"


def as_direction(entry: Entry, direction: str) -> dict[str, Any] | str:
    """The channel's spec used in `direction`, or why it cannot be (a descriptor's channel
    turned around must still be a valid channel: an avro sink needs a schema, say)."""
    data = {**dump(entry.spec), "direction": direction}
    try:
        _CHANNEL.validate_python(data)
    except ValidationError as exc:
        return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
    return data


@dataclass
class ResolvedFlow:
    """A flow with its channels inlined; `origins` says where each inlined channel was written."""

    entry: Entry
    data: dict[str, Any]
    origins: dict[str, Where] = field(default_factory=dict)
    ok: bool = True

    def where(self, loc: tuple[str | int, ...]) -> tuple[Where, tuple[str | int, ...]]:
        """The IR place of a path inside `data`."""
        if loc and loc[0] in self.origins:
            return self.origins[str(loc[0])], loc[1:]
        return self.entry.where, loc

    def issue(self, loc: tuple[str | int, ...], msg: str) -> Issue:
        where, sub = self.where(loc)
        return where.issue(sub, msg)


def dump(spec: Any) -> dict[str, Any]:
    """An IR model as its camelCase dict, without unset optional values."""
    out: dict[str, Any] = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    return out


def lookup_channels(
    collected: Collected, registry: Sequence[Entry] = ()
) -> tuple[list[ResolvedFlow], list[Issue]]:
    """Inline the channels of every member flow."""
    index: dict[str, Entry] = {}
    for entry in [*collected.defined.get("DataChannel", []), *registry]:
        index.setdefault(entry.name, entry)
    known = ", ".join(sorted(index)) or "(none)"
    flows: list[ResolvedFlow] = []
    issues: list[Issue] = []
    for entry in collected.members.get("ScoringFlow", []):
        resolved = ResolvedFlow(entry, dump(entry.spec))
        resolved.data["name"] = entry.name
        for key, direction in CHANNEL_FIELDS:
            name = resolved.data.get(key)
            if name is None:
                continue
            channel = index.get(name)
            if channel is None:
                issues.append(
                    entry.where.issue((key,), f"unknown data channel {name!r}; known: {known}")
                )
                resolved.ok = False
                continue
            spec = dump(channel.spec)
            if channel.spec.direction != direction and any_direction(channel):
                turned = as_direction(channel, direction)
                if isinstance(turned, str):
                    issues.append(
                        entry.where.issue(
                            (key,), f"data channel {name!r} cannot be a {direction}: {turned}"
                        )
                    )
                    resolved.ok = False
                    continue
                spec = turned
            elif channel.spec.direction != direction:
                issues.append(
                    entry.where.issue(
                        (key,),
                        f"data channel {name!r} is a {channel.spec.direction} "
                        f"({channel.where}); {key} needs a {direction}",
                    )
                )
                resolved.ok = False
                continue
            if (
                key == "source"
                and spec.get("config", {}).get("loop")
                and (resolved.data.get("mode", "batch") == "batch")
            ):
                issues.append(
                    entry.where.issue(
                        ("mode",),
                        f"data channel {name!r} loops (config.loop: it never ends): the flow "
                        "needs mode streaming",
                    )
                )
                resolved.ok = False
                continue
            resolved.data[key] = {**spec, "name": name}
            resolved.origins[key] = channel.where
        flows.append(resolved)
    return flows, issues


def resolve_paths(flow: ResolvedFlow) -> ResolvedFlow:
    """Relative file-channel paths and python-step URIs made absolute (after parameters), each
    against the folder of the document that wrote it."""
    data = dict(flow.data)
    for key, _ in CHANNEL_FIELDS:
        channel = data.get(key)
        if isinstance(channel, dict) and channel.get("type") == "file":
            base = flow.origins[key].src.base_dir
            path = resolve_path(channel["config"]["path"], base)
            data[key] = {**channel, "config": {**channel["config"], "path": path}}
    base_dir = flow.entry.where.src.base_dir
    data["steps"] = [
        {**s, "uri": resolve_uri(s["uri"], base_dir)} if s.get("type") == "python" else s
        for s in data.get("steps", [])
    ]
    return ResolvedFlow(flow.entry, data, flow.origins, flow.ok)
