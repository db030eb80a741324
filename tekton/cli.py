"""`tekscore task install|wait|uninstall`: the Kubernetes job tasks the Tekton Tasks run.

Registers commands on the root typer app (found through the `tekscore.cli` entry point).
Registering does no I/O and imports nothing heavy: pyhelm3, kubernetes and the IR machinery are
imported when a command runs. The commands read files and the environment, run helm and call the
Kubernetes API and the scheduler (I/O). Every option can also come from the env var the Tekton
Task sets (`PARAM_*`, `IR_DIR`, `RESULT_RELEASE_PATH`), see `tekton/manifests/` and docs/tasks.md.

Exit codes: 0 done; 1 the task failed (one line `Reason: message` on stderr, plus one structured
log line `task failed`); 2 a usage error (typer).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

T = TypeVar("T")

JobId = Annotated[str, typer.Option("--job-id", envvar="PARAM_JOB_ID", help="The job id.")]
Release = Annotated[
    str, typer.Option("--release", envvar="PARAM_RELEASE", help="The Helm release of the job.")
]
Namespace = Annotated[
    str,
    typer.Option("--namespace", envvar="PARAM_NAMESPACE", help="Namespace of the release."),
]
SchedulerUrl = Annotated[
    str,
    typer.Option(
        "--scheduler-url", envvar="PARAM_SCHEDULER_URL", help="Base URL of the scheduling server."
    ),
]
LogLevel = Annotated[
    str, typer.Option("--log-level", envvar="TEKSCORE_LOG_LEVEL", help="debug, info, warning.")
]
HelmTimeout = Annotated[
    str, typer.Option("--timeout", envvar="PARAM_TIMEOUT", help="helm --timeout (a Go duration).")
]
Helm = Annotated[str, typer.Option("--helm", envvar="TEKSCORE_HELM", help="The helm executable.")]


def configure_logging(level: str) -> None:
    """One JSON event per line on stderr (the task's log in Tekton); imported when a task runs."""
    from common.logs import configure_logging as configure

    configure(level, "json")


def run_task(task: str, job_id: str, work: Callable[[], Awaitable[T]]) -> T:
    """Run one task's coroutine; a `TaskFailed` becomes exit 1 with its reason on stderr."""
    import asyncio

    import structlog

    from common.task_errors import TaskFailed

    log = structlog.get_logger("tekton.cli").bind(job_id=job_id, task=task)
    try:
        return asyncio.run(_call(work))
    except TaskFailed as exc:
        log.error("task failed", reason=exc.reason, message=exc.message)
        message = " ".join(exc.message.split())
        part = f"{exc.part[0]}s/{exc.part[1]}" if exc.part is not None else ""
        write_failure_results(exc.reason, message, part, exc.log_tail or "")
        typer.echo(f"{exc.reason}: {message}", err=True)
        raise typer.Exit(1) from exc


RESULT_LIMIT = 2000  # bytes of the message: Tekton's termination message holds 4096 in all
LOG_LIMIT = 1000  # bytes of the log tail (whole lines, the last ones)


def write_failure_results(reason: str, message: str, part: str = "", log_tail: str = "") -> None:
    """The Task results `failure-reason`, `failure-message`, `failure-part` and `failure-log`
    (paths in RESULT_FAILURE_REASON_PATH, RESULT_FAILURE_MESSAGE_PATH, RESULT_FAILURE_PART_PATH
    and RESULT_FAILURE_LOG_PATH, set by the Tasks): Tekton keeps a failed TaskRun's results, and
    the scheduler reads the job's reason, message, failing part (`flows/<name>`,
    `services/<name>`) and that part's log tail (`errors[].log_tail`) from them."""
    import contextlib
    import os

    data = message.encode()
    if len(data) > RESULT_LIMIT:
        message = data[: RESULT_LIMIT - 3].decode("utf-8", "ignore") + "..."
    tail = log_tail.encode()
    if len(tail) > LOG_LIMIT:  # the last whole lines that fit
        cut = tail[-LOG_LIMIT:]
        log_tail = cut[cut.find(b"\n") + 1 :].decode("utf-8", "ignore")
    for env, value in (
        ("RESULT_FAILURE_REASON_PATH", reason),
        ("RESULT_FAILURE_MESSAGE_PATH", message),
        ("RESULT_FAILURE_PART_PATH", part),
        ("RESULT_FAILURE_LOG_PATH", log_tail),
    ):
        path = os.environ.get(env)
        if path:
            with contextlib.suppress(OSError):  # the exit code and stderr still say it
                Path(path).write_text(value, encoding="utf-8")


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


def register(app: typer.Typer) -> None:
    """Add the `task` command group: `install`, `wait`, `uninstall`."""
    task_app = typer.Typer(
        name="task",
        help="The job's Kubernetes tasks (run by the Tekton Pipeline tekscore-scoring-job).",
        no_args_is_help=True,
    )

    @task_app.command("install")
    def install(
        job_id: JobId,
        release: Release,
        namespace: Namespace,
        scheduler_url: SchedulerUrl,
        chart: Annotated[
            Path,
            typer.Option(envvar="PARAM_CHART", help="Path of the scoring-pipeline chart."),
        ] = Path("/app/charts/scoring-pipeline"),
        timeout: HelmTimeout = "10m",
        ir_dir: Annotated[
            Path | None,
            typer.Option(
                envvar="IR_DIR", help="Folder with job.json (the IR ConfigMap); else fetched."
            ),
        ] = None,
        result_path: Annotated[
            Path | None,
            typer.Option(
                "--result-path", envvar="RESULT_RELEASE_PATH", help="Write the release name here."
            ),
        ] = None,
        helm: Helm = "helm",
        log_level: LogLevel = "info",
    ) -> None:
        """Pre-process the job and `helm upgrade --install --wait` the scoring-pipeline chart."""
        configure_logging(log_level)
        run_task(
            "install",
            job_id,
            lambda: run_install(
                job_id=job_id,
                release=release,
                namespace=namespace,
                scheduler_url=scheduler_url,
                chart=chart,
                helm_timeout=timeout,
                ir_dir=ir_dir,
                helm=helm,
            ),
        )
        if result_path is not None:
            result_path.write_text(release, encoding="utf-8")  # like printf "%s": no newline

    @task_app.command("wait")
    def wait(
        job_id: JobId,
        release: Release,
        namespace: Namespace,
        scheduler_url: SchedulerUrl,
        log_level: LogLevel = "info",
    ) -> None:
        """Watch the job's pods and Jobs until every batch Job completed or one fails."""
        configure_logging(log_level)
        run_task(
            "wait",
            job_id,
            lambda: run_wait(job_id=job_id, release=release, namespace=namespace),
        )

    @task_app.command("uninstall")
    def uninstall(
        job_id: JobId,
        release: Release,
        namespace: Namespace,
        scheduler_url: SchedulerUrl,
        wait_status: Annotated[
            str,
            typer.Option(envvar="PARAM_WAIT_STATUS", help="Succeeded, Failed or None."),
        ] = "None",
        wait_reason: Annotated[
            str, typer.Option(envvar="PARAM_WAIT_REASON", help="The wait task's reason.")
        ] = "",
        timeout: HelmTimeout = "5m",
        helm: Helm = "helm",
        log_level: LogLevel = "info",
    ) -> None:
        """helm uninstall, delete the callback Secret, report the wait task's outcome."""
        configure_logging(log_level)
        run_task(
            "uninstall",
            job_id,
            lambda: run_uninstall(
                job_id=job_id,
                release=release,
                namespace=namespace,
                wait_status=wait_status,
                wait_reason=wait_reason,
                helm_timeout=timeout,
                helm=helm,
            ),
        )

    app.add_typer(task_app)


# ------------------------------------------------------------------ the tasks (I/O when run)


async def run_install(
    *,
    job_id: str,
    release: str,
    namespace: str,
    scheduler_url: str,
    chart: Path,
    helm_timeout: str,
    ir_dir: Path | None,
    helm: str,
) -> None:
    """Callback Secret check -> job bundle (IR_DIR/job.json, else the scheduler) -> pre-process
    (same contentHash as the scheduler) -> helm upgrade --install. The caller writes the result."""
    import structlog

    from common.task_errors import TaskFailed
    from ir.bundle import JobBundle
    from tekton.tasks import helm as helm_tasks
    from tekton.tasks import kube
    from tekton.tasks.fetch import fetch_bundle, render_checked

    log = structlog.get_logger("tekton.cli").bind(job_id=job_id, task="install")
    async with await kube.task_client() as client:
        token = await kube.read_callback_token(client, namespace=namespace, job_id=job_id)
    job_file = ir_dir / "job.json" if ir_dir is not None else None
    if job_file is not None and job_file.is_file():
        try:
            bundle = JobBundle.model_validate_json(job_file.read_bytes())
        except ValueError as exc:
            raise TaskFailed("InvalidIR", f"{job_file} is not a job bundle: {exc}") from exc
        source = str(job_file)
    else:
        bundle = await fetch_bundle(scheduler_url=scheduler_url, job_id=job_id, token=token)
        source = scheduler_url
    if bundle.job_id != job_id:
        raise TaskFailed(
            "InvalidIR", f"The job bundle is for job {bundle.job_id!r}, not {job_id!r}."
        )
    rendered = render_checked(bundle)
    log.info("job pre-processed", source=source, content_hash=rendered.content_hash)
    installer = helm_tasks.HelmInstaller(
        client=helm_tasks.make_client(executable=helm),
        job_id=job_id,
        release=release,
        namespace=namespace,
    )
    async with await kube.task_client() as client:
        revision = await _install_watched(
            installer.install(chart=chart, values=rendered.values, helm_timeout=helm_timeout),
            client=client,
            namespace=namespace,
            job_id=job_id,
        )
    log.info("release installed", release=release, revision=revision)


async def _install_watched(
    install: Awaitable[int], *, client: Any, namespace: str, job_id: str
) -> int:
    """helm's install, while `unready.watch_install` watches the release's pods: the first real
    error (a model that cannot load, CrashLoopBackOff, ...) fails the task at once; a helm error
    (its timeout) gets the not-ready pods and their reasons appended."""
    import asyncio

    from common.task_errors import TaskFailed
    from tekton.tasks import unready

    helm_task: asyncio.Future[int] = asyncio.ensure_future(install)
    watch: asyncio.Future[None] = asyncio.ensure_future(
        unready.watch_install(client, namespace=namespace, job_id=job_id)
    )
    try:
        both: list[asyncio.Future[Any]] = [helm_task, watch]
        await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not helm_task.done():
            helm_task.cancel()
        await asyncio.gather(helm_task, watch, return_exceptions=True)
    failure = None if watch.cancelled() else watch.exception()
    if failure is not None:
        raise failure
    try:
        return helm_task.result()
    except TaskFailed as exc:
        summary = await unready.unready_summary(client, namespace=namespace, job_id=job_id)
        if not summary:
            raise
        raise TaskFailed(exc.reason, f"{exc.message} ({summary})") from exc


async def run_wait(*, job_id: str, release: str, namespace: str) -> None:
    """Watch the job's pods and Jobs until every batch Job completed or one fails."""
    import structlog

    from tekton.tasks import kube

    async with await kube.task_client() as client:
        done = await kube.ReleaseWatcher(kube=client, namespace=namespace, job_id=job_id).wait()
    structlog.get_logger("tekton.cli").info(
        "task succeeded", job_id=job_id, task="wait", release=release, jobs=list(done.jobs)
    )


async def run_uninstall(
    *,
    job_id: str,
    release: str,
    namespace: str,
    wait_status: str,
    wait_reason: str,
    helm_timeout: str,
    helm: str,
) -> None:
    """helm uninstall (tolerating a release never installed), delete the callback Secret (its
    failure is logged, not fatal), then report the wait task's outcome in one log line."""
    import structlog

    from common.task_errors import TaskFailed
    from tekton.tasks import helm as helm_tasks
    from tekton.tasks import kube

    log = structlog.get_logger("tekton.cli").bind(job_id=job_id, task="uninstall")
    installer = helm_tasks.HelmInstaller(
        client=helm_tasks.make_client(executable=helm),
        job_id=job_id,
        release=release,
        namespace=namespace,
    )
    await installer.uninstall(helm_timeout=helm_timeout)
    try:
        async with await kube.task_client() as client:
            await kube.delete_callback_secret(client, namespace=namespace, job_id=job_id)
    except TaskFailed as exc:
        log.warning("callback secret not deleted", reason=exc.reason, error=exc.message)
    except Exception as exc:  # the release is gone; a leftover Secret must not fail the job
        log.warning("callback secret not deleted", error=f"{type(exc).__name__}: {exc}")
    log.info(
        "job finished",
        release=release,
        wait_status=wait_status,
        wait_reason=wait_reason or None,
        outcome=_outcome(wait_status, wait_reason),
    )


def _outcome(status: str, reason: str) -> str:
    """What the finally task saw of the wait task, in the scheduler's words."""
    if status == "Succeeded":
        return "completed"
    if status == "Failed" and reason == "TaskRunCancelled":
        return "cancelled"  # the scheduler cancels wait on completion or on a cancel request
    if status == "Failed":
        return "failed"
    return "not-run"
