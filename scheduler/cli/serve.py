"""`tekscore serve`: run the scheduling server (uvicorn), and the embedded server of `run`.

Registering the command imports only typer: uvicorn, FastAPI and the settings are imported when
a server is built, so other commands (and `--help`) never load them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:
    import socket

    import uvicorn

    from scheduler.config import Settings

DataRoots = Annotated[
    list[Path] | None,
    typer.Option(
        "--data-root",
        help="A folder jobs may read and write files in (repeatable) [TEKSCORE_DATA_ROOTS].",
    ),
]
CodeSources = Annotated[
    list[str] | None,
    typer.Option(
        "--code-source",
        help="A folder or URL prefix python models, pickles and python steps may load from "
        "(repeatable) [TEKSCORE_CODE_SOURCES]. Lets submitters run code as the job's user.",
    ),
]


def build_settings(
    *,
    host: str | None = None,
    port: int | None = None,
    home: Path | None = None,
    backend: str | None = None,
    channels: Path | None = None,
    globals_file: Path | None = None,
    data_roots: list[Path] | None = None,
    code_sources: list[str] | None = None,
    allow_bind: list[str] | None = None,
    sandbox: str | None = None,
) -> Settings:
    """Settings from the environment with the given flags on top; loopback-only without tokens.
    Repeatable flags (`--data-root`, `--code-source`, `--allow-bind`) replace the environment's
    list when given."""
    import structlog

    from scheduler.config import Settings, is_loopback

    overrides = {
        k: v
        for k, v in {
            "host": host,
            "port": port,
            "home": home,
            "backend": backend,
            "channels": channels,
            "TEKSCORE_GLOBALS": globals_file,
            "data_roots": data_roots or None,
            "code_sources": code_sources or None,
            "allow_bind": allow_bind or None,
            "sandbox": sandbox,
        }.items()
        if v is not None
    }
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if not settings.tokens() and not is_loopback(settings.host):
        structlog.get_logger("scheduler").warning(
            "no API token configured (TEKSCORE_API_TOKENS): listening on 127.0.0.1 only",
            asked_host=settings.host,
        )
        settings = settings.model_copy(update={"host": "127.0.0.1"})
    return settings


def embedded_settings(settings: Settings, paths: list[Path]) -> Settings:
    """The settings of `tekscore run`'s embedded server: the folders of the IR it was given
    (a folder itself, a file's folder) are data roots and code sources, besides those
    configured, and the channel registry's folder (`--channels`) is a data root; the person who
    runs it owns the IR, the registry and the machine. It keeps no warm spares: it runs one job,
    which starts before a set could be ready, and no next job would take one."""
    folders = [p.resolve() if p.is_dir() else p.resolve().parent for p in paths]
    registry = [settings.channels.resolve()] if settings.channels is not None else []
    roots = list(dict.fromkeys([*(settings.data_roots or []), *folders, *registry]))
    code = list(dict.fromkeys([*(settings.code_sources or []), *map(str, folders)]))
    return settings.model_copy(
        update={
            "log_level": "warning",
            "data_roots": roots,
            "code_sources": code,
            "warm_runtimes": 0,
        }
    )


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    import uvicorn

    from scheduler.main import create_app

    return uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
        lifespan="on",
        timeout_graceful_shutdown=10,
    )


def serving(config: uvicorn.Config) -> uvicorn.Server:
    """A uvicorn server that, once started (the lifespan done, the socket bound), takes what
    start-up made out of the garbage collector's sight (`common.heap.freeze_startup`)."""
    import uvicorn

    from common.heap import freeze_startup

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                freeze_startup()

    return Server(config)


class EmbeddedServer:
    """A scheduling server on a free loopback port in a background thread (for `run`)."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from common.ports import free_port

        self.settings = settings.model_copy(update={"host": "127.0.0.1", "port": free_port()})
        self.server = uvicorn.Server(uvicorn_config(self.settings))
        self.thread = threading.Thread(target=self.server.run, name="tekscore-server", daemon=True)

    @property
    def url(self) -> str:
        return self.settings.base_url()

    def __enter__(self) -> EmbeddedServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the embedded scheduling server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [8000].")] = None,
    home: Annotated[
        Path | None, typer.Option(help="State folder [$TEKSCORE_HOME or ~/.tekscore].")
    ] = None,
    backend: Annotated[
        Literal["local", "tekton"] | None, typer.Option(help="Job backend [local].")
    ] = None,
    channels: Annotated[Path | None, typer.Option(help="Channel registry folder.")] = None,
    globals_file: Annotated[Path | None, typer.Option("--globals", help="Globals file.")] = None,
    data_root: DataRoots = None,
    code_source: CodeSources = None,
    allow_bind: Annotated[
        list[str] | None,
        typer.Option(
            help="An address besides loopback an http source may listen on (repeatable) "
            "[TEKSCORE_ALLOW_BIND]."
        ),
    ] = None,
    sandbox: Annotated[
        Literal["required", "auto", "off"] | None,
        typer.Option(
            help="Run job processes in bubblewrap: required, auto (when bwrap is installed), "
            "off [auto]."
        ),
    ] = None,
) -> None:
    """Run the scheduling server.

    API tokens: TEKSCORE_API_TOKENS; callback secret: TEKSCORE_SECRET; web view at /ui. Jobs
    reach no file until --data-root says where data lives, and run no code of their own
    (python models and steps, pickled models) until --code-source says where it may come from:
    allowing a code source lets whoever may submit run code as the job's user
    (docs/security.md). Exits 2 when the settings are invalid (or --sandbox required without a
    working bwrap), 3 when the server cannot start (uvicorn's start-up failure: e.g. its state
    database cannot be opened).
    """
    from pydantic import ValidationError

    from common.logs import configure_logging

    configure_logging()
    try:
        settings = build_settings(
            host=host,
            port=port,
            home=home,
            backend=backend,
            channels=channels,
            globals_file=globals_file,
            data_roots=data_root,
            code_sources=code_source,
            allow_bind=allow_bind,
            sandbox=sandbox,
        )
    except ValidationError as exc:
        typer.echo(f"tekscore serve: {exc}", err=True)
        raise typer.Exit(2) from None
    server = serving(uvicorn_config(settings))
    server.run()
    if not server.started:  # uvicorn exits 3 itself on a failed lifespan; any other start-up
        raise typer.Exit(3)
