"""`tekscore platform plan`: what the platform build (`tekscore-platform-build`) of a values file
would build, in which order, and the images it would push.

Registers commands on the root typer app (the `tekscore.cli` entry point `platform`); nothing
heavy is imported until a command runs. The command reads values files and runs `helm template`
of the platform chart (I/O), then prints the plan (`tekton.platform`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    """Add the `platform` command group: `plan`."""
    platform_app = typer.Typer(
        name="platform",
        help="The tekscore platform chart: its build (tekscore-platform-build).",
        no_args_is_help=True,
    )

    @platform_app.command("plan")
    def plan(
        values: Annotated[
            list[Path] | None,
            typer.Argument(help="Values files of the platform chart (as helm -f), in order."),
        ] = None,
        chart: Annotated[
            Path, typer.Option(help="The platform chart (charts/tekscore of the checkout).")
        ] = Path("charts/tekscore"),
        registry: Annotated[
            str | None, typer.Option(help="Push to this registry (the PipelineRun's registry).")
        ] = None,
        tag: Annotated[str | None, typer.Option(help="The tag (the PipelineRun's tag).")] = None,
        output: Annotated[str, typer.Option("-o", "--output", help="text or json.")] = "text",
        helm: Annotated[
            str, typer.Option(envvar="TEKSCORE_HELM", help="helm executable.")
        ] = "helm",
    ) -> None:
        """Print the build order and the images the platform build of these values produces."""
        import asyncio

        import yaml

        from tekton.platform import PlanError, plan_of, render_build_pipeline

        loaded: list[dict[str, Any]] = []
        for path in values or []:
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                typer.echo(f"error: {path}: {exc}", err=True)
                raise typer.Exit(2) from exc
            loaded.append(data)
        overrides = {k: v for k, v in (("registry", registry), ("tag", tag)) if v}
        try:
            pipeline = asyncio.run(render_build_pipeline(chart, loaded, helm=helm))
            result = plan_of(pipeline, overrides)
        except PlanError as exc:
            for problem in exc.problems:
                typer.echo(f"error: {problem}", err=True)
            raise typer.Exit(1) from exc
        if output == "json":
            stages = [
                [
                    {
                        "task": t.name,
                        "kind": t.kind,
                        "taskRef": t.task,
                        "image": t.image,
                        "dockerfile": t.dockerfile,
                        "buildArgs": list(t.build_args),
                        "after": list(t.after),
                    }
                    for t in stage
                ]
                for stage in result.stages
            ]
            typer.echo(json.dumps({"stages": stages, "images": result.images}, indent=2))
            return
        typer.echo(
            f"tekscore-platform-build: registry {result.params.get('registry')}, "
            f"tag {result.params.get('tag')}"
        )
        for number, stage in enumerate(result.stages, 1):
            for task in stage:
                typer.echo(f"  {number}. {task.name}: {_describe(task)}")
        typer.echo("images:")
        for image in result.images:
            typer.echo(f"  {image}")

    app.add_typer(platform_app)


def _describe(task: Any) -> str:
    after = f" (after {', '.join(task.after)})" if task.after else ""
    if task.kind == "build":
        args = f" {' '.join(task.build_args)}" if task.build_args else ""
        return f"build {task.image} from {task.dockerfile}{args}{after}"
    if task.kind == "deploy":
        return f"helm upgrade the platform to the images built{after}"
    return f"Task {task.task} on {task.image}{after}"
