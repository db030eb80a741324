"""Runs one flow from start to end: wait for services, open channels, move micro-batches in order
with `concurrency` in flight, report, shut down on SIGTERM.

Does I/O (through the channels, the scoring client, the reporter, the metrics server). Outcomes:

- batch mode, source exhausted: sinks closed (outputs appear atomically), completion reported,
  `flow completed` logged, termination record `Completed` with the final counters, exit 0;
- streaming mode, SIGTERM/SIGINT: stop taking records, finish in-flight batches, commit, close
  sinks, exit 0 (a finite source that ends first leaves the flow idle until the signal);
- batch mode, SIGTERM/SIGINT: the run is cancelled: sinks aborted (no partial output), exit 1;
- any fatal error: sinks aborted, completion reported with `error` (batch mode), last log line
  `flow failed` with the reason, exit 1 (2 for an unusable CONFIG);
- batch mode, failed records beyond the flow's failure policy (`scoring_flow.policy`: by
  default, every record failed): the outputs and dead letters are written, then the flow ends
  as failed, reason `AllRecordsFailed` / `TooManyFailedRecords` in its completion report and
  termination record, exit 1.

Every end writes the termination record (`common.termination`; `ended`): its supervisor reads
why the flow stopped there, with the final counters, instead of reading the log.
"""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from common.heap import freeze_startup
from common.termination import write_termination
from ir.flows import PythonStep
from ir.values import FlowValues
from scoring_flow.allocator import keep_freed_memory
from scoring_flow.channels import ChannelContext, Sink, Source, SourceBatch, make_sink, make_source
from scoring_flow.codecs import Rejected
from scoring_flow.config import RuntimeSettings, load_flow_values, summary
from scoring_flow.errors import ConfigError, EncodeError, FlowError, SinkError, SourceError
from scoring_flow.httpserver import RunningServer, bind_host
from scoring_flow.items import Counters, Item, dead_letter_entry
from scoring_flow.loader import load_function
from scoring_flow.logs import bind
from scoring_flow.metrics import FlowMetrics, metrics_app
from scoring_flow.pipeline import Pipeline
from scoring_flow.policy import verdict
from scoring_flow.reporting import Reporter
from scoring_flow.scoring import ScoringClient
from scoring_flow.steps import UserFunction
from scoring_flow.types import Record

log = structlog.get_logger("scoring_flow.runner")

_InFlight = tuple[SourceBatch, "asyncio.Task[None]", float]
"""A batch being processed, its task, and when it was read."""

GC_THRESHOLD = 50_000
"""Allocations between collections of the youngest generation (CPython's default: 700)."""

TRIM_THRESHOLD = 256 << 20
"""Freed memory the C allocator keeps for the next batches instead of returning it to the OS."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Command-line options of `tekscore flow run`."""

    metrics_port: int | None = None
    http_port: int | None = None


class _Terminated(FlowError):
    """The flow was stopped by a signal before it finished (a failure only for batch flows)."""

    def __init__(self) -> None:
        super().__init__("The flow was terminated by a signal before it finished.")


class FlowRunner:
    """One flow run; `await run()` returns the process exit code."""

    def __init__(self, flow: FlowValues, *, settings: RuntimeSettings, options: RunOptions) -> None:
        self.flow = flow
        self.settings = settings
        self.options = options
        self.counters = Counters()
        self.metrics = FlowMetrics(flow.name)
        self.healthy = True
        self._stop = asyncio.Event()
        self._source: Source | None = None
        self._first_failure: str | None = None
        self._sinks: list[Sink] = []

    # ------------------------------------------------------------ entry

    async def run(self) -> int:
        """Run the flow; never raises for flow problems, returns the exit code."""
        if self.settings.shard_index >= self.flow.shards:
            return ended(
                EXIT_CONFIG,
                f"JOB_COMPLETION_INDEX {self.settings.shard_index} is not below "
                f"shards={self.flow.shards}",
            )
        self._install_signals()
        try:
            metrics_server = await self._start_metrics()
        except OSError as exc:
            return ended(EXIT_FAILED, f"cannot serve metrics: {exc}")
        try:
            async with Reporter(
                settings=self.settings,
                flow=self.flow.name,
                shards=self.flow.shards,
                counters=self.counters,
                complete_budget=self.settings.completion_retry,
            ) as reporter:
                return await self._run_reported(reporter)
        finally:
            if metrics_server is not None:
                await metrics_server.stop()

    async def _run_reported(self, reporter: Reporter) -> int:
        ticker = asyncio.create_task(reporter.progress_loop())
        error: str | None = None
        code = EXIT_OK
        reason = "FlowFailed"
        try:
            await self._run()
            if self.flow.mode == "batch":
                judged = verdict(
                    self.counters,
                    max_records=self.flow.max_failed_records,
                    max_ratio=self.flow.max_failed_ratio,
                    first=self._first_failure,
                )
                if judged is not None:
                    reason, error = judged
                    code = EXIT_FAILED
        except _Terminated as exc:
            if self.flow.mode == "batch":
                error, code, reason = str(exc), EXIT_FAILED, "Terminated"
        except FlowError as exc:
            error, code = str(exc), EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_FAILED
        except Exception as exc:
            log.exception("unexpected error")
            error, code = f"{type(exc).__name__}: {exc}", EXIT_FAILED
        finally:
            ticker.cancel()
        self.healthy = error is None
        self.metrics.update(self.counters)
        await reporter.progress()
        if self.flow.mode == "batch" and not (error and self._stop.is_set()):
            await reporter.complete(error)
        return ended(
            code,
            error,
            reason=reason,
            counters=self.counters,
            shard=self.settings.shard_index,
            shards=self.flow.shards,
            **self.settings.identity(),
        )

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)

    def request_stop(self, why: str = "stop requested") -> None:
        """Stop taking records (what SIGTERM does)."""
        if not self._stop.is_set():
            log.info("flow stopping", signal=why)
        self._stop.set()
        if self._source is not None:
            self._source.stop()

    async def _start_metrics(self) -> RunningServer | None:
        if self.options.metrics_port is None:
            return None
        server = RunningServer(
            metrics_app(self.metrics, healthy=lambda: self.healthy),
            host=bind_host(),
            port=self.options.metrics_port,
        )
        await server.start()
        log.info("metrics serving", port=server.port)
        return server

    # ------------------------------------------------------------ the run

    async def _run(self) -> None:
        flow = self.flow
        async with ScoringClient(
            flow.services,
            timeout=flow.request_timeout_seconds,
            max_retries=flow.max_retries,
            max_connections=max(flow.concurrency * 2, 4),
        ) as scoring:
            await self._until_stopped(scoring.wait_ready(budget=self.settings.ready_timeout))
            functions = await asyncio.to_thread(self._load_functions)
            pipeline = Pipeline(flow, scorer=scoring, functions=functions)
            ctx = ChannelContext(
                flow=flow.name,
                mode=flow.mode,
                shard_index=self.settings.shard_index,
                shards=flow.shards,
                http_port=self.options.http_port,
                queue_size=flow.concurrency,
            )
            source = make_source(flow.source, ctx)
            sink = make_sink(flow.sink, ctx)
            dead = make_sink(flow.dead_letter, ctx, dead_letter=True) if flow.dead_letter else None
            log.info("flow activated", **summary(flow))
            _tune_memory()
            await self._move(pipeline, source=source, sink=sink, dead=dead)

    async def _until_stopped(self, work: Awaitable[None]) -> None:
        """Await `work` unless a stop is requested first (then end the run early)."""
        task = asyncio.ensure_future(work)
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if task.done():
            task.result()
            return
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise _Terminated()

    def _load_functions(self) -> dict[int, UserFunction]:
        return {
            i: load_function(step)
            for i, step in enumerate(self.flow.steps)
            if isinstance(step, PythonStep)
        }

    async def _move(
        self, pipeline: Pipeline, *, source: Source, sink: Sink, dead: Sink | None
    ) -> None:
        opened: list[Sink] = []
        self._source = source
        try:
            await source.open()
            if self._stop.is_set():
                source.stop()
            for s in (sink, dead):
                if s is not None:
                    await s.open()
                    opened.append(s)
            await self._pump(pipeline, source=source, sink=sink, dead=dead)
            if self.flow.mode == "batch" and self._stop.is_set():
                raise _Terminated()
            for s in opened:
                await s.close()
            opened.clear()
            await source.close()
            log.info("sinks closed", **self.counters.as_dict())
            if self.flow.mode == "streaming":
                await self._stop.wait()
        finally:
            for s in opened:
                await _quietly(s.abort)
            await _quietly(source.close)

    async def _pump(
        self, pipeline: Pipeline, *, source: Source, sink: Sink, dead: Sink | None
    ) -> None:
        """Read batches and start processing them (at most `concurrency` at once) while another
        task settles them in source order: sink, dead letters, commit, counters."""
        slots = asyncio.Semaphore(self.flow.concurrency)
        queue: asyncio.Queue[_InFlight | None] = asyncio.Queue()
        started: set[asyncio.Task[None]] = set()

        async def read() -> None:
            batches = _guard(source.batches(self.flow.batch_size))
            try:
                while True:
                    await slots.acquire()
                    try:
                        batch = await anext(batches)
                    except StopAsyncIteration:
                        break
                    self.counters.records_in += len(batch.items)
                    task = asyncio.create_task(pipeline.process(batch.items))
                    started.add(task)
                    await queue.put((batch, task, time.monotonic()))
                    self.metrics.in_flight.inc()
            finally:
                await batches.aclose()
                await queue.put(None)

        async def settle() -> None:
            while (entry := await queue.get()) is not None:
                await self._settle(entry, source=source, sink=sink, dead=dead)
                started.discard(entry[1])
                self.metrics.in_flight.dec()
                slots.release()

        reader = asyncio.create_task(read())
        writer = asyncio.create_task(settle())
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
            await asyncio.gather(reader, writer)
        finally:
            for task in (reader, writer, *started):
                task.cancel()
            await asyncio.gather(reader, writer, *started, return_exceptions=True)
            self.metrics.in_flight.set(0)

    async def _settle(
        self,
        entry: _InFlight,
        *,
        source: Source,
        sink: Sink,
        dead: Sink | None,
    ) -> None:
        batch, task, started = entry
        await task
        items: list[Item] = batch.items
        outputs = [
            r for item in items if item.failure is None and not item.filtered for r in item.results
        ]  # the live items' results (`Item.alive`, inlined: the hot path)
        if outputs:
            rejected = await sink.write(outputs)
            if rejected:
                _fail_rejected(items, rejected)
        failed = [item for item in items if item.failure is not None]
        if failed:
            if dead is not None:
                entries = [dead_letter_entry(i, flow=self.flow.name) for i in failed]
                await _dead_letter(dead, entries)
            first = failed[0].failure
            if first is not None and self._first_failure is None:
                self._first_failure = f"{first.step}: {first.reason}"
            assert first is not None
            log.warning("records failed", count=len(failed), reason=first.reason, step=first.step)
        await source.commit(batch)
        self.counters.settle(items)
        self.metrics.update(self.counters)
        self.metrics.batch_seconds.observe(time.monotonic() - started)


ENCODE = "encode"
"""The step named in the dead letter of a record its sink's encoding cannot carry."""


def _fail_rejected(items: list[Item], rejected: Rejected) -> None:
    """Fail the items whose outputs (numbered as `_settle` lists them) the sink left out."""
    index = 0
    for item in items:
        if not item.alive:
            continue
        mine = range(index, index + len(item.results))
        index += len(item.results)
        reasons = [rejected[i] for i in mine if i in rejected]
        if reasons:
            item.fail(EncodeError(reasons[0], step=ENCODE))


async def _dead_letter(dead: Sink, entries: list[Record]) -> None:
    """Write dead-letter entries; one whose record the dead-letter encoding cannot carry either
    is written again with the record as JSON text (Python's `json` takes any integer and
    escapes any string), so that no failed record is lost."""
    rejected = await dead.write(entries)
    if not rejected:
        return
    again = [
        {**entries[i], "record": json.dumps(entries[i]["record"], default=repr)} for i in rejected
    ]
    if await dead.write(again):
        raise SinkError(dead.kind, "a dead-letter entry cannot be written even as text")


async def _guard(batches: AsyncIterator[SourceBatch]) -> AsyncGenerator[SourceBatch, None]:
    """The source's batches, with unexpected read errors turned into a `SourceError`."""
    try:
        async for batch in batches:
            yield batch
    except FlowError:
        raise
    except Exception as exc:
        raise SourceError("source", f"{type(exc).__name__}: {exc}") from exc


def _tune_memory() -> None:
    """Records are acyclic and freed by reference counting; the cyclic collector would otherwise
    walk every object of the imported libraries again and again while batches allocate millions
    of dicts. Freeze what start-up made and collect young objects less often. And keep freed
    memory for the next batch instead of handing it back to the OS (`keep_freed_memory`)."""
    freeze_startup()
    gc.set_threshold(GC_THRESHOLD, 50, 100)
    keep_freed_memory(TRIM_THRESHOLD)


async def _quietly(fn: Callable[[], Awaitable[None]]) -> None:
    try:
        await fn()
    except Exception as exc:
        log.warning("cleanup failed", error=f"{type(exc).__name__}: {exc}")


def ended(
    code: int,
    error: str | None,
    *,
    reason: str = "FlowFailed",
    counters: Counters | None = None,
    **detail: object,
) -> int:
    """The flow's last words: its last log line (`flow completed` or `flow failed`, for people)
    and its termination record (`Completed`, `InvalidConfig` for exit code 2, else `reason`;
    with the final counters), for its supervisor. Returns `code`."""
    counts = counters.as_dict() if counters is not None else {}
    if error is None:
        log.info("flow completed", **counts)
        write_termination("Completed", "The flow completed.", **counts, **detail)
        return code
    log.error("flow failed", reason=error, **counts)
    write_termination("InvalidConfig" if code == EXIT_CONFIG else reason, error, **counts, **detail)
    return code


def run_flow(config: Path, *, settings: RuntimeSettings, options: RunOptions) -> int:
    """Load CONFIG and run the flow in a fresh event loop; the process exit code."""
    structlog.contextvars.bind_contextvars(job_id=settings.job_id)
    try:
        flow = load_flow_values(config)
    except ConfigError as exc:
        return ended(EXIT_CONFIG, str(exc))
    return run_loaded(flow, settings=settings, options=options)


def run_loaded(flow: FlowValues, *, settings: RuntimeSettings, options: RunOptions) -> int:
    """Run an already loaded flow in a fresh event loop; the process exit code."""
    bind(job_id=settings.job_id, flow=flow.name)

    async def main() -> int:
        return await FlowRunner(flow, settings=settings, options=options).run()

    return asyncio.run(main())
