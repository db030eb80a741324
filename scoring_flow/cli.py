"""The `tekscore flow run`, `tekscore baked` and `tekscore channel ...` commands.

Registers commands on the root typer app (found through the `tekscore.cli` entry point). Module
imports stay light: the flow's machinery is imported when a command runs. The commands read
files and the environment and run the flow (network, files); registering does no I/O.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the `flow` command group (`flow run`), the `baked` command and the `channel` group
    (`scoring_flow.channel_cli`)."""
    from scoring_flow.channel_cli import register as register_channel

    register_channel(app)
    flow_app = typer.Typer(
        name="flow",
        help="Scoring flows: move records from a source through scoring services to a sink.",
        no_args_is_help=True,
    )

    @flow_app.command("run")
    def run(
        config: Annotated[
            Path,
            typer.Argument(help="One resolved scoringFlows entry of a values file (JSON or YAML)."),
        ],
        metrics_port: Annotated[
            int | None,
            typer.Option(help="Serve /metrics and /healthz on this port (0: any free port)."),
        ] = None,
        http_port: Annotated[
            int | None,
            typer.Option(help="Port of an http source (overrides its config.port)."),
        ] = None,
    ) -> None:
        """Run one scoring flow (env: TEKSCORE_JOB_ID, TEKSCORE_CALLBACK_URL, ...)."""
        from common.logs import configure_logging
        from scoring_flow.config import RuntimeSettings
        from scoring_flow.errors import ConfigError
        from scoring_flow.runner import EXIT_CONFIG, RunOptions, ended, run_flow

        try:
            settings = RuntimeSettings.from_env()
        except ConfigError as exc:
            configure_logging("info", "json", cache=True)
            raise typer.Exit(ended(EXIT_CONFIG, str(exc))) from exc
        configure_logging(settings.log_level, settings.log_format, cache=True)
        options = RunOptions(metrics_port=metrics_port, http_port=http_port)
        raise typer.Exit(run_flow(config, settings=settings, options=options))

    app.add_typer(flow_app)

    @app.command("baked")
    def baked(
        metrics_port: Annotated[
            int | None, typer.Option(help="Serve the flow's /metrics and /healthz here.")
        ] = None,
        http_port: Annotated[
            int | None,
            typer.Option(
                envvar="TEKSCORE_HTTP_PORT",
                help="Port of a REST input stream's round trips (default 8080).",
            ),
        ] = None,
    ) -> None:
        """Standalone engine, as a FastScore baked engine: serve MODEL and run STREAMS slot 0 ->
        slot 1 (env MODEL, SCHEMAS, STREAMS, ATTACHMENTS), with no scheduler."""
        from scoring_flow.baked import run_baked

        raise typer.Exit(run_baked(metrics_port=metrics_port, http_port=http_port))
