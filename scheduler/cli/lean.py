"""Start-up trims of the `tekscore` command: what typer and httpx load that a command does not
need.

No I/O but reading installed distributions' `entry_points.txt`. Applied by
`scheduler.cli.main.main` before a command runs:

- `without_httpx_cli()`: `import httpx` also imports httpx's own command-line tool
  (`httpx._main`: click, pygments, rich's progress and syntax modules), about a third of
  httpx's import time. A stand-in module takes its place; calling its `main` loads the real
  tool, so nothing that uses it breaks.
- `lighten(command)`: typer 0.29 checks every parameter value with a pydantic `TypeAdapter`,
  built on first use, which imports pydantic and its schema machinery (the largest single cost
  of `tekscore status`). For `str` and `bool` parameters given a str or a bool (what the
  adapter would return unchanged) and for choices (enums, literals: typer's own check and error
  wording), the coercion is done without building the adapter; any other value (a bool flag
  from an environment variable, bytes) and every other parameter (paths, numbers, lists) get
  typer's adapter as before. When typer's internals are not the expected ones, nothing is
  changed.
- `only(app, name)`: a command's module registers several commands (`status` comes with
  `submit`, `list`, ...); typer builds every registered command before running one. The app
  keeps just the command that runs.
- `plain_http_transport()`: httpx loads the CA bundle (`load_verify_locations`, the costliest
  single call of `tekscore status`) for every client, also one that talks plain http. For an
  `http://` server the CLI's client gets a transport whose TLS context has no CA loaded: no
  https connection could be verified with it, so it fails closed.
- `entry_points(group)`: `importlib.metadata` imports the `email` package to read metadata
  (about a third of `tekscore --help`'s time with the scan); the CLI only needs the
  `entry_points.txt` of each installed distribution, read here the way `importlib.metadata`
  finds them (every `*.dist-info` / `*.egg-info` folder on `sys.path`, the first of each
  distribution name wins).
- `exit_now(code)`: once a short client command (`status`, `list`, ...) has printed its answer,
  the interpreter's own finalization (tearing down ~230 modules and collecting their objects)
  costs about a fifth of the command's time. Its exit handlers are run and its output flushed,
  then the process ends at once; when flushing fails (a closed pipe), the normal exit is taken.
- `for_listing(app)`: `tekscore --help` lists the commands, their one-line help only, but typer
  builds every command in full to print it (the signature and type hints of ~45 functions,
  half of `--help`'s time). The listing is made from a copy of the app whose commands and
  groups have the same names, help and settings and parameterless callbacks.
"""

from __future__ import annotations

import atexit
import copy
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import FunctionType, ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

_HTTPX_CLI = "httpx._main"


def without_httpx_cli() -> None:
    """Let `import httpx` skip httpx's command-line tool (see the module docstring)."""
    if "httpx" in sys.modules or _HTTPX_CLI in sys.modules:
        return
    stand_in = ModuleType(_HTTPX_CLI, "Stand-in for httpx's command-line tool, loaded on use.")

    def main(*args: Any, **kwargs: Any) -> Any:
        import importlib

        if sys.modules.get(_HTTPX_CLI) is stand_in:
            del sys.modules[_HTTPX_CLI]
        real: Any = importlib.import_module(_HTTPX_CLI).main
        return real(*args, **kwargs)

    stand_in.main = main  # type: ignore[attr-defined]
    sys.modules[_HTTPX_CLI] = stand_in


def exit_code(code: object) -> int:
    """The process status `raise SystemExit(code)` gives (None 0, an int itself, any other
    value 1, printed to stderr)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def exit_now(code: object) -> None:
    """End the process with `code` now, skipping the interpreter's finalization (see the module
    docstring); exit handlers run and output is flushed first."""
    status = exit_code(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        raise SystemExit(status) from None
    os._exit(status)


def lighten(command: Any) -> int:
    """Give the str, bool and choice parameters of `command` (and its subcommands) a coercion
    without pydantic; return how many were changed (0 when typer is not the expected one)."""
    try:
        from typer._click.exceptions import BadParameter
        from typer._click.utils import _escape_control_characters
        from typer._coercion import RuntimeParam, build_runtime_param
        from typer._param_types import coerce_cli_choice
    except ImportError:
        return 0

    try:  # typer's RuntimeParam is a frozen dataclass of (parameter_info, annotation)

        @dataclass(frozen=True)
        class Lean(RuntimeParam):
            """A str that is a str, a bool that is a bool: as they are (what typer's adapters
            return for them); a choice: typer's own check, with the message pydantic gives its
            ValueError. Any other value goes to typer's adapter, built then."""

            kind: str = "str"

            def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
                kind = type(value)
                if (kind is str and self.kind == "str") or (kind is bool and self.kind == "bool"):
                    return value
                if self.kind == "choice":
                    choices = param.type_descriptor.choices
                    case_sensitive = self.parameter_info.case_sensitive
                    try:
                        return coerce_cli_choice(
                            value, choices=choices, case_sensitive=case_sensitive, ctx=ctx
                        )
                    except ValueError as exc:
                        message = _escape_control_characters(f"Value error, {exc}")
                        raise BadParameter(message, ctx=ctx, param=param) from exc
                typer_own = build_runtime_param(param.type_descriptor)
                param._runtime_param = typer_own
                return typer_own._coerce_value(value, param=param, ctx=ctx)

    except TypeError:
        return 0

    def lean(param: Any) -> bool:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", False) is not None:
            return False
        try:
            info = descriptor.parameter_info
            if descriptor.is_file or descriptor.is_list or descriptor.is_tuple or info.parser:
                return False
            if descriptor.annotation in (str, bool):
                kind = descriptor.annotation.__name__
            elif descriptor.is_choice:
                kind = "choice"
            else:
                return False
            param._runtime_param = Lean(
                annotation=descriptor.annotation, parameter_info=info, kind=kind
            )
        except (AttributeError, TypeError):
            return False
        return True

    changed = 0
    for cmd in _commands(command):
        changed += sum(lean(param) for param in getattr(cmd, "params", []))
        _lean_help_option(cmd, lean)
    return changed


def _lean_help_option(command: Any, lean: Callable[[Any], bool]) -> None:
    """The `--help` option is made by click while parsing, for the context's option names:
    give it the lean coercion when it is made."""
    made = getattr(command, "get_help_option", None)
    if made is None:
        return

    def get_help_option(ctx: Any) -> Any:
        option = made(ctx)
        if option is not None:
            lean(option)
        return option

    command.get_help_option = get_help_option


def _commands(command: Any) -> list[Any]:
    found = [command]
    for sub in (getattr(command, "commands", None) or {}).values():
        found.extend(_commands(sub))
    return found


def for_listing(app: typer.Typer) -> typer.Typer:
    """A copy of `app` (and of its groups) whose callbacks take no parameters, with the same
    names, docstrings and settings: what the root help prints is the same, without building
    each command's parameters. Only for printing the root help: the callbacks do nothing."""
    clone = copy.copy(app)
    clone.info = _with_stub(app.info)
    clone.registered_callback = _with_stub(app.registered_callback)
    clone.registered_commands = [_with_stub(info) for info in app.registered_commands]
    groups = []
    for info in app.registered_groups:
        group = _with_stub(info)
        if info.typer_instance is not None:
            group.typer_instance = for_listing(info.typer_instance)
        groups.append(group)
    clone.registered_groups = groups
    return clone


def _with_stub(info: Any) -> Any:
    """A copy of a typer info object whose `callback`, when a function, is a stub."""
    if info is None or not isinstance(getattr(info, "callback", None), FunctionType):
        return copy.copy(info)
    callback = info.callback

    def stub() -> None:
        return None

    for name in ("__name__", "__qualname__", "__doc__", "__module__"):
        setattr(stub, name, getattr(callback, name))
    info = copy.copy(info)
    info.callback = stub
    return info


def only(app: typer.Typer, name: str) -> typer.Typer:
    """A copy of `app` with only the command or group called `name` (`app` itself when it
    has none of that name)."""
    from typer.main import get_command_name

    def named(info: Any) -> str | None:
        if info.name and isinstance(info.name, str):
            return str(info.name)
        callback = getattr(info, "callback", None)
        return get_command_name(callback.__name__) if callback is not None else None

    commands = [c for c in app.registered_commands if named(c) == name]

    def group_name(info: Any) -> Any:
        if isinstance(info.name, str):
            return info.name
        return getattr(getattr(info.typer_instance, "info", None), "name", None)

    groups = [g for g in app.registered_groups if group_name(g) == name]
    if not commands and not groups:
        return app
    clone = copy.copy(app)
    clone.registered_commands, clone.registered_groups = commands, groups
    return clone


def plain_http_transport() -> Any:
    """An httpx transport for `http://` servers: its TLS context has no CA certificates
    loaded (cheap to make), so it could verify no https server (fails closed)."""
    import ssl

    import httpx

    return httpx.HTTPTransport(verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))


@dataclass(frozen=True)
class EntryPoint:
    """An entry point as `importlib.metadata` gives it: `name`, `value` (`module:attr`)."""

    name: str
    value: str
    group: str

    def load(self) -> Any:
        """The object the entry point names."""
        import importlib

        module, _, attr = self.value.partition("[")[0].partition(":")  # extras ignored
        found: Any = importlib.import_module(module.strip())
        for part in attr.strip().split(".") if attr.strip() else ():
            found = getattr(found, part)
        return found


def entry_points(group: str) -> list[EntryPoint]:
    """The entry points of `group` of every distribution on `sys.path`, in the order
    `importlib.metadata.entry_points(group=...)` gives them."""
    import re

    seen: set[str] = set()
    found: list[EntryPoint] = []
    for base in sys.path:
        try:
            names = os.listdir(base or ".")
        except OSError:
            continue
        for name in names:
            stem, dot, suffix = name.rpartition(".")
            if not dot or suffix not in ("dist-info", "egg-info"):
                continue
            dist = re.sub(r"[-_.]+", "_", stem.partition("-")[0]).lower()
            if dist in seen:
                continue
            seen.add(dist)
            try:
                with open(
                    os.path.join(base or ".", name, "entry_points.txt"), encoding="utf-8"
                ) as f:
                    text = f.read()
            except OSError:
                continue
            found.extend(_group(text, group))
    return found


def _group(text: str, group: str) -> list[EntryPoint]:
    """The entries of `[group]` in an `entry_points.txt` (an ini file: `name = value`)."""
    out = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == group and "=" in line:
            key, _, value = line.partition("=")
            out.append(EntryPoint(key.strip(), value.strip(), group))
    return out
