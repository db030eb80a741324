"""The `tekscore serve-model` command, added to the root `tekscore` app by `register`.

Imports stay light here (every `tekscore` invocation loads this module); the server modules
are imported inside the command. The command itself serves until stopped (network I/O).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


def register(app: typer.Typer) -> None:
    """Add `serve-model` to the root app."""
    app.command("serve-model")(serve_model)


def serve_model(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="NAME=TYPE:URI, TYPE python|sklearn|onnx|xgboost|lightgbm|pmml|tensorflow, "
            "URI file://, http(s)://, s3:// "
            "or a local path. Repeatable.",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="JSON/YAML: one scoringServices entry of the values file "
            "(docs/scoring-service.md).",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind (0: any free port).")] = 8080,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Server processes (default: the config's, else 1)."),
    ] = None,
    max_body_bytes: Annotated[
        int,
        typer.Option(min=1, envvar="TEKSCORE_MAX_BODY_BYTES", help="Larger bodies get 413."),
    ] = DEFAULT_MAX_BODY_BYTES,
    model_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="TEKSCORE_MODEL_DIR",
            help="Where downloaded models go (default: a temporary folder removed at exit).",
        ),
    ] = None,
    coalesce: Annotated[
        bool,
        typer.Option(
            envvar="TEKSCORE_COALESCE",
            help="Score concurrent records requests to a row-wise scikit-learn model with one "
            "call (no waiting).",
        ),
    ] = True,
) -> None:
    """Serve models over the Open Inference Protocol V2 plus a records endpoint."""
    from common.termination import write_termination
    from scoring_service.config import ServeSettings, ServeSpec, build_service_config
    from scoring_service.errors import ConfigError

    try:
        service = build_service_config(config, model or [])
        settings = ServeSettings(
            host=host,
            port=port,
            workers=workers or service.workers,
            max_body_bytes=max_body_bytes,
            model_dir=str(model_dir) if model_dir else None,
            coalesce=coalesce,
        )
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        write_termination("InvalidConfig", str(exc))
        raise typer.Exit(2) from exc

    from scoring_service.server import run

    try:
        run(ServeSpec(service=service, settings=settings))
    except SystemExit as exc:  # uvicorn exits 1 when it cannot start (a port already taken)
        if exc.code not in (None, 0):
            write_termination(
                "ServiceFailed", f"The server could not start (exit code {exc.code}); see its log."
            )
        raise
    except Exception as exc:
        write_termination("ServiceFailed", f"{type(exc).__name__}: {exc}")
        raise
