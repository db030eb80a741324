"""What a job may touch, checked at pre-processing: files under the data roots only, code from
the code sources only, the server's state folder never, a bind address the server allows, the
secrets the operator's allow-list grants (docs/security.md).

Pure logic on the rendered job, except that paths are resolved on the file system
(`os.path.realpath`: symlinks and `..`) before they are compared, so a symlink inside a data
root that leads out of it is refused. Every refusal is an `Issue` at the place in the IR that
wrote the path (file:line), naming the path, what is allowed, and the setting that changes it.

The one place that says what counts as code: `is_code_model` (python modules; pickles:
`sklearn` models are joblib files, which run code when loaded; TensorFlow SavedModels) and
python steps. Another loader
of user code asks `Access.code_problem` for its URI.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from common.fetch import local_path
from ir.collect import Collected
from ir.errors import Issue, Loc
from ir.lookup import CHANNEL_FIELDS, ResolvedFlow

CODE_MODEL_TYPES = frozenset({"python", "sklearn", "tensorflow"})
"""Model types whose loading runs code the model's files bring: a module (and a Racetrack job's
requirements); a pickle; a SavedModel, whose graph may hold any TensorFlow op, file reads and
writes included (TensorFlow's SECURITY.md: "models are programs"). XGBoost and LightGBM native
files, PMML and ONNX are data to their evaluators."""

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

DATA_ROOTS = "TEKSCORE_DATA_ROOTS"
CODE_SOURCES = "TEKSCORE_CODE_SOURCES"
ALLOW_BIND = "TEKSCORE_ALLOW_BIND"
SECRET_ALLOW = "TEKSCORE_SECRET_ALLOW"  # noqa: S105 (a setting's name)
URL_SCHEMES = ("http", "https", "s3")
GIT_PREFIX = "git+"


def is_code_model(model_type: str) -> bool:
    """Whether loading a model of this type runs code from its file."""
    return model_type in CODE_MODEL_TYPES


def real(path: str | Path) -> Path:
    """`path` with symlinks and `..` resolved (the parts that exist; the rest normalised)."""
    return Path(os.path.realpath(path))


def is_under(path: Path, root: Path) -> bool:
    """Whether `path` is `root` or inside it (both already resolved)."""
    return path == root or root in path.parents


@dataclass(frozen=True)
class UrlPrefix:
    """A code source on the network: `https://host[:port]/path/`, `s3://bucket/path/`."""

    scheme: str
    netloc: str
    path: str

    @classmethod
    def parse(cls, text: str) -> UrlPrefix:
        parsed = urlparse(text)
        if parsed.scheme.lower() not in URL_SCHEMES or not parsed.netloc:
            raise ValueError(
                f"{text!r} is neither an absolute folder nor an http(s):// or s3:// URL"
            )
        if parsed.query or parsed.fragment:
            raise ValueError(f"{text!r}: a URL prefix has no query or fragment")
        path = _clean_url_path(parsed.path)
        if path is None:
            raise ValueError(f"{text!r}: '.' and '..' are not allowed in a URL prefix")
        return cls(parsed.scheme.lower(), parsed.netloc.lower(), path.rstrip("/") + "/")

    def holds(self, uri: str) -> bool:
        """Whether `uri` is under this prefix (same scheme and host, path below)."""
        parsed = urlparse(uri)
        path = _clean_url_path(parsed.path)
        if path is None or parsed.scheme.lower() != self.scheme:
            return False
        return parsed.netloc.lower() == self.netloc and (path + "/").startswith(self.path)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.path}"


def _clean_url_path(raw: str) -> str | None:
    """The URL path decoded, or None when a segment is `.` or `..` (before or after decoding)."""
    decoded = unquote(raw)
    if any(part in (".", "..") for part in decoded.split("/")):
        return None
    return posixpath.normpath(decoded) if decoded else "/"


def parse_secret_allow(text: str) -> dict[str, frozenset[str]]:
    """`SELECTOR=secret,secret;...` (a selector: a pipeline name, `KEY:VALUE` of a job label, or
    `*`) as {selector: secrets}; a ValueError names a malformed entry by its number."""
    out: dict[str, set[str]] = {}
    for number, entry in enumerate((e.strip() for e in text.split(";")), start=1):
        if not entry:
            continue
        selector, sep, names = entry.partition("=")
        secrets = {n.strip() for n in names.split(",") if n.strip()}
        if not sep or not selector.strip():
            raise ValueError(f"{SECRET_ALLOW} entry {number} is not SELECTOR=SECRET[,SECRET...]")
        out.setdefault(selector.strip(), set()).update(secrets)
    return {k: frozenset(v) for k, v in out.items()}


@dataclass(frozen=True)
class Access:
    """The server's rules for what its jobs may touch.

    `data_roots` None: no file rule (the tekton backend when unconfigured: a pod sees only its
    volumes); empty: no file is reachable. `code_folders` and `code_urls` None: any code (the
    tekton backend when unconfigured); empty: none. Folders are resolved when built
    (`Access.build`). `home` is never reachable. `secret_allow` None: any secret the pipeline
    names; otherwise only those its pipeline name or job labels are granted.
    """

    data_roots: tuple[Path, ...] | None = ()
    code_folders: tuple[Path, ...] | None = ()
    code_urls: tuple[UrlPrefix, ...] = ()
    home: Path | None = None
    allow_bind: frozenset[str] = frozenset()
    secret_allow: Mapping[str, frozenset[str]] | None = None
    settings: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        data_roots: Iterable[str | Path] | None,
        code_sources: Iterable[str] | None,
        home: Path | None = None,
        allow_bind: Iterable[str] = (),
        secret_allow: str = "",
    ) -> Access:
        """From settings: folders resolved, URL prefixes parsed (ValueError names a bad one)."""
        folders: list[Path] | None = None
        urls: list[UrlPrefix] = []
        if code_sources is not None:
            folders = []
            for source in code_sources:
                if "://" in source:
                    urls.append(UrlPrefix.parse(source))
                elif Path(source).is_absolute():
                    folders.append(real(source))
                else:
                    raise ValueError(
                        f"code source {source!r} is neither an absolute folder nor a URL prefix"
                    )
        roots = None
        if data_roots is not None:
            roots = []
            for root in data_roots:
                if not Path(root).is_absolute():
                    raise ValueError(f"data root {str(root)!r} is not an absolute folder")
                roots.append(real(root))
        return cls(
            data_roots=None if roots is None else tuple(dict.fromkeys(roots)),
            code_folders=None if folders is None else tuple(dict.fromkeys(folders)),
            code_urls=tuple(dict.fromkeys(urls)),
            home=None if home is None else real(home),
            allow_bind=frozenset(allow_bind),
            secret_allow=parse_secret_allow(secret_allow) if secret_allow.strip() else None,
        )

    # -- single checks: None when allowed, else why not (a phrase naming the setting) ---------

    def path_problem(self, raw: str) -> str | None:
        """Why a job may not read or write the local file `raw` (absolute), or None."""
        resolved = real(raw)
        moved = resolved != Path(os.path.normpath(raw))
        how = f"{raw} leads (through a symlink or '..')" if moved else raw + " is"
        if self.home is not None and is_under(resolved, self.home):
            return f"{how} inside the server's state folder, which no job may touch"
        if self.data_roots is None or any(is_under(resolved, r) for r in self.data_roots):
            return None
        roots = ", ".join(map(str, self.data_roots)) or "none configured"
        return f"{how} outside the data roots ({roots}): setting {DATA_ROOTS}"

    def code_problem(self, uri: str) -> str | None:
        """Why the code (a module, a pickle) behind `uri` may not be loaded, or None. Code from
        git (`git+<remote>`) is the server's `gitServer` global's to allow, for every job
        (`ir.globals.check_git_sources`): the git server is that code source."""
        if uri.startswith(GIT_PREFIX):
            return None
        path = local_path(uri)
        if path is not None:
            resolved = real(path)
            if self.home is not None and is_under(resolved, self.home):
                return f"{uri} is inside the server's state folder, which no job may touch"
            if self.code_folders is None or any(is_under(resolved, f) for f in self.code_folders):
                return None
        elif self.code_folders is None or any(u.holds(uri) for u in self.code_urls):
            return None
        sources = [*map(str, self.code_folders or ()), *map(str, self.code_urls)]
        allowed = ", ".join(sources) or "none configured"
        return (
            f"{uri} is not from a code source ({allowed}): setting {CODE_SOURCES}; allowing one "
            "lets whoever may submit run code as the job's user"
        )

    def data_uri_problem(self, uri: str) -> str | None:
        """Why a model file that is data (not code) may not be read, or None: a local file must
        be under the data roots; remote ones are fetched by the service, not read here."""
        path = local_path(uri)
        return None if path is None else self.path_problem(str(path))

    def bind_problem(self, host: str) -> str | None:
        """Why a flow may not listen on `host`, or None (loopback is always allowed)."""
        if host in LOOPBACK_HOSTS or host in self.allow_bind:
            return None
        allowed = ", ".join(sorted(self.allow_bind)) or "loopback only"
        return f"listening on {host} is not allowed ({allowed}): setting {ALLOW_BIND}"

    def granted_secrets(self, pipeline: str, labels: Mapping[str, str]) -> frozenset[str] | None:
        """The secrets a pipeline with these job labels may name (None: any)."""
        if self.secret_allow is None:
            return None
        granted: set[str] = set(self.secret_allow.get("*", frozenset()))
        granted |= self.secret_allow.get(pipeline, frozenset())
        for key, value in labels.items():
            granted |= self.secret_allow.get(f"{key}:{value}", frozenset())
        return frozenset(granted)


def access_issues(
    access: Access,
    collected: Collected,
    flows: Sequence[ResolvedFlow],
    values: Mapping[str, Any],
) -> list[Issue]:
    """Every place of the job that reaches past what `access` allows, at the place that wrote it:
    file channels, models' and python steps' URIs, an http source's host, secret references."""
    issues: list[Issue] = []
    for name in sorted({m["name"] for s in values.get("scoringServices", []) for m in s["models"]}):
        entry = collected.first("Model", name)
        if entry is None:
            continue
        uri = entry.spec.uri
        if entry.spec.type == "external":
            continue
        problem = (
            access.code_problem(uri)
            if is_code_model(entry.spec.type)
            else access.data_uri_problem(uri)
        )
        if problem is not None:
            issues.append(entry.where.issue(("uri",), problem))
    pipeline = collected.pipeline.name
    labels: Mapping[str, str] = values.get("job", {}).get("labels", {})
    granted = access.granted_secrets(pipeline, labels)
    for flow in flows:
        issues += _flow_issues(access, flow, granted)
    return issues


def _flow_issues(access: Access, flow: ResolvedFlow, granted: frozenset[str] | None) -> list[Issue]:
    issues: list[Issue] = []
    data = flow.data
    for key, _ in CHANNEL_FIELDS:
        channel = data.get(key)
        if not isinstance(channel, dict):
            continue
        config = channel.get("config") or {}
        if channel.get("type") == "file" and isinstance(config.get("path"), str):
            problem = access.path_problem(config["path"])
            if problem is not None:
                issues.append(flow.issue((key, "config", "path"), problem))
        if channel.get("type") == "http" and isinstance(config.get("host"), str):
            problem = access.bind_problem(config["host"])
            if problem is not None:
                issues.append(flow.issue((key, "config", "host"), problem))
        if granted is not None:
            for loc, secret in _secret_refs(channel, (key,)):
                if secret not in granted:
                    allowed = ", ".join(sorted(granted)) or "none"
                    issues.append(
                        flow.issue(
                            loc,
                            f"secret {secret!r} is not granted to this pipeline (granted: "
                            f"{allowed}): setting {SECRET_ALLOW}",
                        )
                    )
    for i, step in enumerate(data.get("steps", [])):
        if step.get("type") == "python" and isinstance(step.get("uri"), str):
            problem = access.code_problem(step["uri"])
            if problem is not None:
                issues.append(flow.issue(("steps", i, "uri"), problem))
    return issues


def _secret_refs(node: Any, loc: Loc) -> list[tuple[Loc, str]]:
    """(place, secret name) of every `{secretRef: {name, key}}` below `node`."""
    if isinstance(node, dict):
        ref = node.get("secretRef")
        if isinstance(ref, dict) and set(node) == {"secretRef"}:
            return [((*loc, "secretRef", "name"), str(ref.get("name")))]
        return [found for k, v in node.items() for found in _secret_refs(v, (*loc, k))]
    if isinstance(node, list):
        return [found for i, v in enumerate(node) for found in _secret_refs(v, (*loc, i))]
    return []
