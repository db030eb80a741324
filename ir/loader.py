"""Reading IR text into validated documents that remember where every value was written.

Does file I/O (`load_paths`, `load_registry`); everything else here is pure. YAML or JSON, one
or more documents per file, several files or folders (read in sorted order). Line numbers come
from a position map built from PyYAML's node tree (the approach of Dagster's `yaml_utils`):
each key path of a document maps to the 1-based line where its value starts, and a lookup for a
path that is not there (a missing key) falls back to the nearest parent. All problems of all
files are collected before raising one `IRValidationError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from common.avro import SchemaError, parse_record_schema
from common.names import DNS1123_LABEL_RE
from common.racetrack import ManifestError, is_manifest, parse_manifest
from ir.documents import Document
from ir.errors import IRValidationError, Issue, Loc
from ir.fastscore import DescriptorError, channel_document, convert, is_descriptor
from ir.limits import MAX_DEPTH, Limit, check_node, too_deep
from ir.perf import paused_gc

IR_SUFFIXES = (".yaml", ".yml", ".json")
SCHEMA_SUFFIX = ".avsc"
"""Avro schema files: named schemas (by file stem) for FastScore stream descriptors."""

_DOCUMENT: TypeAdapter[Any] = TypeAdapter(Document)


@dataclass(frozen=True)
class Positions:
    """Where each value of one document starts: key path -> 1-based line."""

    lines: Mapping[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """The line of `loc`, or of its nearest parent that has one."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return None


@dataclass(frozen=True)
class SourceDoc:
    """One validated IR document with its origin.

    `base_dir` is where relative paths in it resolve (the file's folder, or the request's
    `base_dir` for text sent to the API).
    """

    doc: Any  # one of the ir.documents *Doc classes
    file: str
    index: int
    positions: Positions
    base_dir: Path

    def issue(self, loc: Loc, msg: str) -> Issue:
        """An issue at `loc` inside this document."""
        return Issue(self.file, self.positions.line_of(loc), loc, msg)

    @property
    def kind(self) -> str:
        return str(self.doc.kind)

    @property
    def name(self) -> str:
        return str(self.doc.metadata.name)


_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when present (several times faster), else PyYAML's; both keep marks."""


class _Loader(_SafeLoader):  # type: ignore[misc,valid-type]
    """The safe loader minus `!!binary`: IR values are JSON values, and bytes are not text."""


def _refuse_binary(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None, None, "!!binary values are not allowed: IR values are JSON values", node.start_mark
    )


_Loader.add_constructor("tag:yaml.org,2002:binary", _refuse_binary)


def _positions(node: yaml.Node, loc: Loc, out: dict[Loc, int], issues: list[str]) -> None:
    out[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                issues.append(f"{key_node.start_mark.line + 1}:{key}")
            seen.add(key)
            _positions(value_node, (*loc, key), out, issues)
            out[(*loc, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _positions(item, (*loc, i), out, issues)


def parse_text(text: str, *, file: str) -> tuple[list[tuple[Any, Positions]], list[Issue]]:
    """Parse YAML/JSON text into (data, positions) per document; syntax problems as issues.

    A document that `ir.limits.check_node` refuses (too costly to expand, too deep, a recursive
    alias, a key that is not a plain value) becomes an issue, not data.
    """
    docs, issues, _ = _parse_text(text, file=file, stop_after=None)
    return docs, issues


@paused_gc()
def _parse_text(
    text: str, *, file: str, stop_after: int | None
) -> tuple[list[tuple[Any, Positions]], list[Issue], int]:
    """`parse_text`, and how many documents it read: it stops after `stop_after` + 1."""
    loader = _Loader(text)
    docs: list[tuple[Any, Positions]] = []
    issues: list[Issue] = []
    count = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            count += 1
            if stop_after is not None and count > stop_after:
                break
            problem = check_node(node)
            if problem is not None:
                issues.append(Issue(file, problem.line, (), problem.msg))
                continue
            lines: dict[Loc, int] = {}
            dupes: list[str] = []
            _positions(node, (), lines, dupes)
            for dupe in dupes:
                dupe_line, key = dupe.split(":", 1)
                issues.append(Issue(file, int(dupe_line), (key,), f"duplicate key {key!r}"))
            docs.append((loader.construct_document(node), Positions(lines)))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        issues.append(Issue(file, line, (), f"not valid YAML/JSON: {exc.problem or exc}"))
    except yaml.YAMLError as exc:
        issues.append(Issue(file, None, (), f"not valid YAML/JSON: {exc}"))
    finally:
        loader.dispose()
    return docs, issues, count


def clean_loc(data: Any, loc: Sequence[str | int]) -> Loc:
    """Drop the union tags pydantic puts into `loc` (they are not keys of the data)."""
    out: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(current, dict):
            if part in current:
                out.append(part)
                current = current[part]
            elif last:
                out.append(part)
            continue
        if isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            out.append(part)
            current = current[part]
            continue
        if not last and not isinstance(part, int):
            continue  # a tag inside a non-container value
        out.append(part)
        current = None
    return tuple(out)


def _present(data: Any, loc: Loc) -> Loc:
    """The longest prefix of `loc` that exists in `data`."""
    out: list[str | int] = []
    for part in loc:
        in_dict = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_dict or in_list):
            break
        data = data[part]
        out.append(part)
    return tuple(out)


def _message(error: Mapping[str, Any]) -> str:
    msg = str(error["msg"])
    if error["type"] == "extra_forbidden":
        return "unknown field (not part of this kind)"
    if error["type"] == "missing":
        return "field required"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if error["type"] == "string_pattern_mismatch" and "a-z0-9" in msg:
        return (
            "must be a DNS-1123 label: lower-case letters, digits and '-', "
            "starting and ending alphanumeric"
        )
    if error["type"] == "union_tag_not_found":
        return "field required"
    if error["type"] == "union_tag_invalid":
        ctx = error.get("ctx") or {}
        return f"unknown value {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    return msg


def _foreign(
    data: dict[str, Any], *, file: str, positions: Positions, schemas: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, Issue | None]:
    """A document of another product read as the IR document it stands for: a FastScore
    stream descriptor as a DataChannel named after its file, a Racetrack job manifest
    (`job.yaml`) as the Model of its folder. (None, None) for IR documents."""
    if is_manifest(data):
        return _racetrack_model(data, file=file, positions=positions)
    if not is_descriptor(data):
        return None, None
    name = Path(file).stem
    if not DNS1123_LABEL_RE.match(name):
        return None, Issue(
            file,
            positions.line_of(()),
            (),
            f"a FastScore stream descriptor is a DataChannel named after its file, and "
            f"{name!r} is not a DNS-1123 label: rename the file, or run "
            "`tekscore channel import FILE --name NAME`",
        )
    try:
        conv = convert(data, name=name, schemas=schemas)
    except DescriptorError as exc:
        return None, Issue(file, positions.line_of(()), (), f"FastScore stream descriptor: {exc}")
    if conv.credentials:
        return None, Issue(
            file,
            positions.line_of(("Transport",)),
            ("Transport",),
            "this FastScore stream descriptor holds S3 credentials; channels take them from "
            "Secrets only: run `tekscore channel import FILE`, which writes secretRefs and says "
            "which Secret to create",
        )
    return channel_document(conv, name=name, source=Path(file).name), None


def _racetrack_model(
    data: dict[str, Any], *, file: str, positions: Positions
) -> tuple[dict[str, Any] | None, Issue | None]:
    try:
        manifest = parse_manifest(data)
    except ManifestError as exc:
        return None, Issue(file, positions.line_of(()), (), f"Racetrack job manifest: {exc}")
    if not DNS1123_LABEL_RE.match(manifest.name):
        return None, Issue(
            file,
            positions.line_of(("name",)),
            ("name",),
            f"Racetrack job manifest: the job's name {manifest.name!r} names its Model and "
            "must be a DNS-1123 label (lower-case letters, digits and '-')",
        )
    annotations = {"tekscore.dev/racetrack-manifest": Path(file).name}
    if manifest.owner_email:
        annotations["tekscore.dev/owner-email"] = manifest.owner_email
    spec: dict[str, Any] = {"type": "python", "uri": "file://."}
    resources = manifest.kubernetes_resources()
    if resources["requests"] or resources["limits"]:
        spec["resources"] = resources
    doc = {
        "apiVersion": "tekscore.dev/v1",
        "kind": "Model",
        "metadata": {
            "name": manifest.name,
            "labels": {str(k): str(v) for k, v in manifest.labels.items()},
            "annotations": annotations,
        },
        "spec": spec,
    }
    return doc, None


def validate_documents(
    parsed: Iterable[tuple[Any, Positions]],
    *,
    file: str,
    base_dir: Path,
    schemas: Mapping[str, Any] | None = None,
) -> tuple[list[SourceDoc], list[Issue]]:
    """Validate parsed documents against the IR models; every problem becomes an issue. A
    FastScore stream descriptor becomes a DataChannel (`ir.fastscore`; `schemas` are the named
    Avro schemas its `Schema` may name)."""
    docs: list[SourceDoc] = []
    issues: list[Issue] = []
    for index, (data, positions) in enumerate(parsed):
        if data is None:
            continue
        if not isinstance(data, dict):
            issues.append(Issue(file, positions.line_of(()), (), "a document must be a mapping"))
            continue
        converted, problem = _foreign(data, file=file, positions=positions, schemas=schemas or {})
        if problem is not None:
            issues.append(problem)
            continue
        if converted is not None:
            data, positions = converted, Positions({(): positions.line_of(()) or 1})
        try:
            doc = _DOCUMENT.validate_python(data)
        except ValidationError as exc:
            for error in exc.errors():
                loc = clean_loc(data, error["loc"])
                if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
                    loc = (*_present(data, loc), str(error["ctx"]["discriminator"]).strip("'"))
                issues.append(Issue(file, positions.line_of(loc), loc, _message(error)))
            continue
        docs.append(SourceDoc(doc, file, index, positions, base_dir))
    return docs, issues


_DOCUMENTS = "IR documents in one request"


@paused_gc()
def load_texts(
    files: Mapping[str, str], *, base_dir: Path, max_documents: Limit | None = None
) -> list[SourceDoc]:
    """Load IR given as text (`{file name: text}`), e.g. from an API request.

    Relative paths in a file resolve against its folder: the folder of its name when that is
    an absolute path (what the CLI sends), else of `base_dir / name` (`adder/job.yaml` is the
    Racetrack job of `base_dir/adder`, as `tekscore render adder/job.yaml` run in `base_dir`
    reads it). With `max_documents`, reading stops at the first document past the limit, and
    that is the one issue reported.
    """
    docs: list[SourceDoc] = []
    issues: list[Issue] = []
    texts = {n: t for n, t in files.items() if not n.endswith(SCHEMA_SUFFIX)}
    schemas, issues = named_schemas({n: t for n, t in files.items() if n not in texts})
    count = 0
    for name in sorted(texts):
        left = None if max_documents is None else max_documents.value - count
        parsed, parse_issues, read = _parse_text(texts[name], file=name, stop_after=left)
        count += read
        if max_documents is not None and count > max_documents.value:
            raise IRValidationError([Issue(name, None, (), max_documents.message(_DOCUMENTS))])
        base = (base_dir / name).parent  # an absolute name replaces base_dir
        valid, invalid = validate_documents(parsed, file=name, base_dir=base, schemas=schemas)
        docs += valid
        issues += parse_issues + invalid
    if issues:
        raise IRValidationError(issues)
    return docs


@paused_gc()
def load_objects(
    objects: Sequence[Any],
    *,
    base_dir: Path,
    file: str = "<request>",
    max_documents: Limit | None = None,
) -> list[SourceDoc]:
    """Load IR given as already-parsed JSON objects (no line numbers to report); an object
    nested deeper than `ir.limits.MAX_DEPTH` is refused before validation."""
    if max_documents is not None and len(objects) > max_documents.value:
        raise IRValidationError(
            [Issue(file, None, (), max_documents.message(_DOCUMENTS, len(objects)))]
        )
    deep = [
        Issue(file, None, (i,), f"nested more than {MAX_DEPTH} levels deep: refused")
        for i, obj in enumerate(objects)
        if too_deep(obj, MAX_DEPTH)
    ]
    if deep:
        raise IRValidationError(deep)
    parsed = [(obj, Positions()) for obj in objects]
    docs, issues = validate_documents(parsed, file=file, base_dir=base_dir)
    if issues:
        raise IRValidationError(issues)
    return docs


def read_schema_files(folder: Path) -> dict[str, str]:
    """The `*.avsc` files of a folder as `{file name: text}` (file I/O)."""
    return {
        str(p): p.read_text(encoding="utf-8")
        for p in sorted(folder.glob(f"*{SCHEMA_SUFFIX}"))
        if p.is_file()
    }


def named_schemas(files: Mapping[str, str]) -> tuple[dict[str, Any], list[Issue]]:
    """Avro record schemas by file stem (`in.avsc` -> `in`) as field lists, and the problems of
    the files that are not valid record schemas."""
    schemas: dict[str, Any] = {}
    issues: list[Issue] = []
    for name, text in sorted(files.items()):
        try:
            schemas[Path(name).stem] = parse_record_schema(json.loads(text))
        except (ValueError, SchemaError) as exc:
            issues.append(Issue(name, None, (), f"not an Avro record schema: {exc}"))
    return schemas, issues


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files named, plus the IR files of folders named (sorted, not recursive)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.suffix in IR_SUFFIXES and p.is_file())
        else:
            out.append(path)
    return out


@paused_gc()
def load_paths(paths: Iterable[Path]) -> list[SourceDoc]:
    """Load IR files and folders; relative paths inside resolve against each file's folder."""
    docs: list[SourceDoc] = []
    issues: list[Issue] = []
    for path in expand_paths(paths):
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            issues.append(Issue(name, None, (), f"cannot read: {exc}"))
            continue
        parsed, parse_issues = parse_text(text, file=name)
        schemas: Mapping[str, Any] = {}
        if any(is_descriptor(data) for data, _ in parsed):
            schemas, schema_issues = named_schemas(read_schema_files(path.parent))
            issues += schema_issues
        valid, invalid = validate_documents(
            parsed, file=name, base_dir=path.resolve().parent, schemas=schemas
        )
        docs += valid
        issues += parse_issues + invalid
    if issues:
        raise IRValidationError(issues)
    return docs


def load_registry(folder: Path | None) -> list[SourceDoc]:
    """The server's channel registry: the DataChannel documents of a folder (others are errors)."""
    if folder is None:
        return []
    docs = load_paths([folder])
    wrong = [
        d.issue(("kind",), "the channel registry holds DataChannel documents only")
        for d in docs
        if d.kind != "DataChannel"
    ]
    if wrong:
        raise IRValidationError(wrong)
    return docs
