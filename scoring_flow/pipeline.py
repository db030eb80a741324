"""One micro-batch through the flow: input schema check, the steps in order, output schema check,
and the sink's message key (a record without the key's fields fails here, with the reason).

No I/O of its own: score steps call the injected `Scorer` (the HTTP client in `scoring.py`) and
python steps run the user function in a worker thread. Every failure of a record is a
`RecordError` (`SchemaViolation`, `StepError`) recorded on the record's `Item`, never raised out
of a batch, so the runner can dead-letter it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from common.fields import missing_message
from ir.channels import KafkaChannel
from ir.flows import FilterStep, MapStep, PythonStep
from ir.keys import KeyTemplate
from ir.types import FieldSpec
from ir.values import FlowValues, ResolvedScoreStep
from scoring_flow import steps as st
from scoring_flow.errors import SchemaViolation, StepError
from scoring_flow.items import Item
from scoring_flow.schema_check import violation
from scoring_flow.types import Record

INPUT_CHECK = "schema:input"
OUTPUT_CHECK = "schema:output"
KEY_CHECK = "sink:key"


class Scorer(Protocol):
    """What a score step needs: one answer per payload, in order."""

    async def score(self, *, service: str, model: str, payloads: list[Record]) -> list[Any]:
        """Score payloads with a model of a service: one answer per payload, in order (a result
        object, a list of 0..n of them, or a `ScoringError` when that payload's call failed)."""


def check_key(items: list[Item], key: KeyTemplate | None) -> None:
    """Fail the live items with a record that lacks (or has null in) a field of the sink's
    message key: producing it without a key would break the per-key order silently."""
    if key is None:
        return
    for item in items:
        if item.alive:
            for record in item.results:
                missing = key.missing(record)
                if missing:
                    why = "; ".join(missing_message(name) for name in missing)
                    item.fail(SchemaViolation(f"message key {key.text!r}: {why}", step=KEY_CHECK))
                    break


def sink_key(flow: FlowValues) -> KeyTemplate | None:
    """The message key of the flow's sink, when it is a Kafka sink with `config.key`."""
    sink = flow.sink
    if isinstance(sink, KafkaChannel) and sink.config.key:
        return KeyTemplate.parse(sink.config.key)
    return None


def check(items: list[Item], schema: list[FieldSpec] | None, *, step: str) -> None:
    """Fail the live items with a record that does not match `schema`."""
    if not schema:
        return
    for item in items:
        if item.alive:
            for record in item.results:
                reason = violation(record, schema)
                if reason:
                    item.fail(SchemaViolation(reason, step=step))
                    break


class Pipeline:
    """The flow's steps, ready to process micro-batches."""

    def __init__(
        self,
        flow: FlowValues,
        *,
        scorer: Scorer,
        functions: dict[int, st.UserFunction],
    ) -> None:
        self.flow = flow
        self.scorer = scorer
        self.functions = functions
        self.key = sink_key(flow)

    async def process(self, items: list[Item]) -> None:
        """Run every step on the live items of one micro-batch."""
        check(items, self.flow.source.format.schema_, step=INPUT_CHECK)
        for index, step in enumerate(self.flow.steps):
            if not any(item.alive for item in items):
                break
            if isinstance(step, ResolvedScoreStep):
                await self._score(step, items)
            elif isinstance(step, MapStep):
                st.apply_map(step, items)
            elif isinstance(step, FilterStep):
                st.apply_filter(step, items)
            elif isinstance(step, PythonStep):
                await asyncio.to_thread(st.apply_python, step, self.functions[index], items)
        check(items, self.flow.sink.format.schema_, step=OUTPUT_CHECK)
        check_key(items, self.key)

    async def _score(self, step: ResolvedScoreStep, items: list[Item]) -> None:
        label = st.step_label(step)
        pairs: list[tuple[Item, Record]]
        payloads: list[Record]
        if not step.inputs:  # the common case: each record is sent as it is (the hot path)
            pairs = [
                (item, record)
                for item in items
                if item.failure is None and not item.filtered  # `alive`, inlined
                for record in item.results
            ]
            payloads = [record for _, record in pairs]
        else:
            pairs, payloads = _mapped(step, items, label)
        if not payloads:
            return
        answers = await self.scorer.score(service=step.service, model=step.model, payloads=payloads)
        st.apply_score_answers(step, pairs, answers)


def _mapped(
    step: ResolvedScoreStep, items: list[Item], label: str
) -> tuple[list[tuple[Item, Record]], list[Record]]:
    """The (item, record) pairs and payloads of a score step with `inputs`; an item whose
    record lacks an input field fails."""
    pairs: list[tuple[Item, Record]] = []
    payloads: list[Record] = []
    for item in items:
        if item.alive:
            try:
                mine = [st.score_payload(step, r) for r in item.results]
            except KeyError as exc:
                item.fail(StepError(f"record field {exc.args[0]!r} is missing", step=label))
                continue
            for record, payload in zip(item.results, mine, strict=True):
                pairs.append((item, record))
                payloads.append(payload)
    return pairs, payloads
