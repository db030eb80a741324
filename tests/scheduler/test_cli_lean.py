"""The start-up trims of `tekscore` (`scheduler/cli/lean.py`) change nothing a user sees: a
typer app run with `lighten` prints, fails and exits exactly as typer alone does, for values
from the command line and the environment, good and bad; httpx without its command-line tool
still has it when called."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

APP = textwrap.dedent(
    """
    import enum, sys
    from pathlib import Path
    from typing import Annotated, Literal

    import typer
    from typer.main import get_command

    from scheduler.cli.lean import lighten


    class Fmt(enum.StrEnum):
        table = "table"
        json = "json"


    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


    @app.callback()
    def root() -> None:
        "The app."


    @app.command()
    def show(
        name: Annotated[str, typer.Argument(help="A name.")],
        fmt: Annotated[Fmt, typer.Option("--output", "-o", case_sensitive=False)] = Fmt.table,
        flag: Annotated[bool, typer.Option("--flag/--no-flag", envvar="LEAN_FLAG")] = True,
        quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
        server: Annotated[str | None, typer.Option(envvar="LEAN_SERVER")] = None,
        count: Annotated[int, typer.Option(min=1)] = 1,
        mode: Annotated[Literal["a", "b"], typer.Option()] = "a",
        path: Annotated[Path | None, typer.Option()] = None,
    ) -> None:
        "Show the values as the command got them."
        print(repr((name, fmt, flag, quiet, server, count, mode, path)))


    command = get_command(app)
    if sys.argv[1] == "lean":
        assert lighten(command) > 0
    command(sys.argv[2:], prog_name="t")
    """
)


def run(kind: str, args: list[str], env: dict[str, str]) -> tuple[str, str, int]:
    result = subprocess.run(
        [sys.executable, "-c", APP, kind, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80", **env},
        timeout=120,
    )
    return result.stdout, result.stderr, result.returncode


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["show", "x"], {}),
        (["show", "x", "-o", "JSON", "-q", "--server", "s", "--mode", "b"], {}),
        (["show", "x", "-o", "xml"], {}),
        (["show"], {}),
        (["show", "x", "--count", "0"], {}),
        (["show", "x", "--mode", "c"], {}),
        (["show", "x", "--no-flag", "--path", "/tmp"], {}),
        (["show", "x"], {"LEAN_FLAG": "0", "LEAN_SERVER": "from-env"}),
        (["show", "x"], {"LEAN_FLAG": "maybe"}),
        (["show", "--help"], {}),
        (["--help"], {}),
        (["nope"], {}),
    ],
)
def test_lightened_app_behaves_as_typer_alone(args: list[str], env: dict[str, str]) -> None:
    plain = run("plain", args, env)
    assert run("lean", args, env) == plain
    assert plain[0] or plain[1]  # it printed something: the comparison compared output


def test_httpx_without_its_cli_still_runs_the_cli_when_called() -> None:
    script = textwrap.dedent(
        """
        import sys
        from scheduler.cli.lean import without_httpx_cli
        without_httpx_cli()
        import httpx
        assert httpx.Client is not None
        print("pygments" in sys.modules, "rich" in sys.modules)
        sys.argv = ["httpx", "--help"]
        httpx.main()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    first, _, rest = result.stdout.partition("\n")
    assert first == "False False"  # importing httpx loaded none of its CLI's libraries
    assert "Usage: httpx" in rest  # and its CLI still works


TEKSCORE = str(Path(sys.executable).parent / "tekscore")
PLAIN_TEKSCORE = (
    "import sys; from scheduler.cli.main import create_app; "
    "create_app(sys.argv[1] if len(sys.argv) > 1 else None)(sys.argv[1:], prog_name='tekscore')"
)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        [],
        ["status", "--help"],
        ["status"],
        ["status", "j-unreachable"],
        ["validate", "examples/iris/batch.yaml"],
        ["validate", "examples/iris/streaming.yaml", "examples/iris/batch.yaml"],
        ["list", "-o", "xml"],
        ["list", "--limit", "0"],
        ["submit", "x.yaml", "-p", "no-equals-sign"],
        ["flow", "--help"],
        ["flow", "run", "--help"],
        ["serve-model", "--help"],
        ["no-such-command"],
    ],
)
def test_tekscore_prints_what_typer_alone_prints(args: list[str]) -> None:
    """The real `tekscore` (root help listed from parameterless copies, only the command that
    runs built, lean parameter checks) against the same app run by typer alone: the same
    output and exit code, for help and for usage errors."""
    env = {**os.environ, "COLUMNS": "100", "TEKSCORE_SERVER": "http://127.0.0.1:9"}
    lean = subprocess.run([TEKSCORE, *args], capture_output=True, text=True, env=env, timeout=120)
    plain = subprocess.run(
        [sys.executable, "-c", PLAIN_TEKSCORE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert (lean.stdout, lean.stderr, lean.returncode) == (
        plain.stdout,
        plain.stderr,
        plain.returncode,
    )
    assert lean.stdout or lean.stderr


@pytest.mark.parametrize(("code", "status"), [(None, 0), (3, 3), ("bad input", 1)])
def test_exit_now_flushes_output_and_runs_exit_handlers(
    tmp_path: Path, code: object, status: int
) -> None:
    """A client command's early exit loses nothing: output still in Python's buffers (stdout is
    a pipe) is written, exit handlers run, and the status is what `SystemExit(code)` gives."""
    marker = tmp_path / "handler-ran"
    script = textwrap.dedent(
        f"""
        import atexit, pathlib, sys
        from scheduler.cli.lean import exit_now
        atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text("yes"))
        sys.stdout.write("x" * 100_000)
        exit_now({code!r})
        print("not reached")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == status
    assert result.stdout == "x" * 100_000
    assert result.stderr == ("bad input\n" if status == 1 else "")
    assert marker.read_text() == "yes"


@pytest.mark.parametrize("group", ["tekscore.cli", "console_scripts", "pytest11"])
def test_entry_points_are_importlib_metadatas(group: str) -> None:
    from importlib.metadata import entry_points as from_metadata

    from scheduler.cli.lean import entry_points

    ours = [(e.name, e.value) for e in entry_points(group)]
    assert ours == [(e.name, e.value) for e in from_metadata(group=group)]
    assert ours  # the group is not empty here: the comparison compared entries
    loaded = {e.name: e.load() for e in entry_points("tekscore.cli")}
    assert loaded == {e.name: e.load() for e in from_metadata(group="tekscore.cli")}
