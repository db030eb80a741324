"""The record-shaping steps: `map`, `filter` and `python` (a user function), applied to items.

Pure logic, no I/O (the python step's function is loaded elsewhere, by `loader.py`). Each
`apply_*` takes the items of one micro-batch and changes the live ones in place: a record a step
cannot handle fails with a `StepError` naming the step; a record no filter keeps is `filtered`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ir.flows import Condition, FilterStep, MapStep, PythonStep
from ir.values import ResolvedScoreStep
from scoring_flow.errors import ScoringError, StepError
from scoring_flow.items import Item
from scoring_flow.types import Record

UserFunction = Callable[[list[Record]], Any]
_MISSING = object()


def step_label(step: Any) -> str:
    """The name used for a step in logs and dead-letter entries: its `name`, else its type."""
    return str(step.name or step.type)


def map_record(step: MapStep, record: Record) -> Record:
    """`select`, then `drop`, then `rename`, then `set` on one record."""
    out = (
        {k: record[k] for k in step.select if k in record}
        if step.select is not None
        else dict(record)
    )
    for key in step.drop:
        out.pop(key, None)
    for old, new in step.rename.items():
        if old in out:
            out[new] = out.pop(old)
    out.update(step.set)
    return out


def apply_map(step: MapStep, items: list[Item]) -> None:
    """Apply a map step to every result of the live items."""
    for item in items:
        if item.alive:
            item.results = [map_record(step, r) for r in item.results]


def lookup(record: Record, path: str) -> Any:
    """A field by name, or by dotted path into nested objects; `_MISSING` when absent."""
    if path in record:
        return record[path]
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def condition_holds(cond: Condition, record: Record) -> bool:
    """Whether one comparison holds; raises TypeError for values that cannot be compared."""
    value = lookup(record, cond.field)
    if cond.op == "exists":
        return value is not _MISSING and value is not None
    if cond.op == "notExists":
        return value is _MISSING or value is None
    if value is _MISSING:
        return cond.op in ("ne", "notIn")
    match cond.op:
        case "eq":
            return bool(value == cond.value)
        case "ne":
            return bool(value != cond.value)
        case "in":
            return value in cond.value
        case "notIn":
            return value not in cond.value
        case "lt":
            return bool(value < cond.value)
        case "le":
            return bool(value <= cond.value)
        case "gt":
            return bool(value > cond.value)
        case _:
            return bool(value >= cond.value)


def keeps(step: FilterStep, record: Record) -> bool:
    """Whether a filter step keeps a record (`all` or `any` of its conditions)."""
    results = (condition_holds(c, record) for c in step.where)
    return all(results) if step.match == "all" else any(results)


def apply_filter(step: FilterStep, items: list[Item]) -> None:
    """Keep the results a filter step matches; an item with no result left is filtered."""
    label = step_label(step)
    for item in items:
        if not item.alive:
            continue
        try:
            kept = [r for r in item.results if keeps(step, r)]
        except TypeError as exc:
            item.fail(StepError(f"cannot compare: {exc}", step=label))
            continue
        if item.results and not kept:
            item.filtered = True
        item.results = kept


def apply_python(step: PythonStep, function: UserFunction, items: list[Item]) -> None:
    """Call the user function on all live results at once; when it raises, call it record by
    record to find which ones fail. It must return one entry per record: a record, a list of
    records (0..n), or None (the record is filtered)."""
    label = step_label(step)
    pairs = [(item, r) for item in items if item.alive for r in item.results]
    if not pairs:
        return
    try:
        answers = _call(function, [r for _, r in pairs])
    except Exception as exc:
        if len(pairs) == 1:
            pairs[0][0].fail(StepError(f"{type(exc).__name__}: {exc}", step=label))
            return
        answers = []
        for item, record in pairs:
            try:
                answers.extend(_call(function, [record]))
            except Exception as one:
                item.fail(StepError(f"{type(one).__name__}: {one}", step=label))
                answers.append(_MISSING)
    _assign(pairs, answers, label)


def _call(function: UserFunction, records: list[Record]) -> list[Any]:
    answer = function(records)
    if not isinstance(answer, list) or len(answer) != len(records):
        got = len(answer) if isinstance(answer, list) else type(answer).__name__
        raise ValueError(f"the function must return a list of {len(records)} entries, got {got}")
    return answer


def _assign(pairs: list[tuple[Item, Record]], answers: list[Any], label: str) -> None:
    fresh: dict[int, list[Record]] = {}
    for (item, _), answer in zip(pairs, answers, strict=True):
        if answer is _MISSING or not item.alive:
            continue
        bucket = fresh.setdefault(id(item), [])
        if answer is None:
            continue
        if isinstance(answer, dict):
            bucket.append(answer)
        elif isinstance(answer, list) and all(isinstance(a, dict) for a in answer):
            bucket.extend(answer)
        else:
            item.fail(
                StepError(
                    f"the function returned {type(answer).__name__}, not a record", step=label
                )
            )
    for item, _ in pairs:
        if item.alive and id(item) in fresh:
            item.results = fresh[id(item)]
            if not item.results:
                item.filtered = True


def score_payload(step: ResolvedScoreStep, record: Record) -> Record:
    """What a score step sends for one record: the whole record, or the `inputs` mapping
    (model field <- record field). Raises KeyError naming a missing record field."""
    if not step.inputs:
        return record
    payload: Record = {}
    for model_field, record_field in step.inputs.items():
        value = lookup(record, record_field)
        if value is _MISSING:
            raise KeyError(record_field)
        payload[model_field] = value
    return payload


def score_result(step: ResolvedScoreStep, record: Record, result: Record) -> Record:
    """One output record from one model result: `outputs` picks and renames (model field ->
    record field; a missing one raises KeyError), `merge` adds to the input record."""
    if step.outputs:
        picked: Record = {}
        for model_field, record_field in step.outputs.items():
            if model_field not in result:
                raise KeyError(model_field)
            picked[record_field] = result[model_field]
        result = picked
    return {**record, **result} if step.merge else dict(result)


def apply_score_answers(
    step: ResolvedScoreStep, pairs: list[tuple[Item, Record]], answers: list[Any]
) -> None:
    """Fold the service's answers back into the items. One answer per sent record: a result
    object, a list of 0..n result objects, `{"$error": reason}` (the service refused that
    record: its wire format) or a `ScoringError` (the call for that record failed); the last two
    fail the record with a `StepError`."""
    label = step_label(step)
    if not step.outputs and step.merge and _apply_merged(pairs, answers, label):
        return
    fresh: dict[int, list[Record]] = {}
    simple = not step.outputs
    for (item, record), answer in zip(pairs, answers, strict=True):
        if item.failure is not None:
            continue
        bucket = fresh.get(id(item))
        if bucket is None:
            bucket = fresh[id(item)] = []
        if type(answer) is dict:
            if "$error" in answer:
                item.fail(StepError(str(answer["$error"]), step=label))
            elif simple:  # the common case, kept cheap
                bucket.append({**record, **answer} if step.merge else answer)
            else:
                _add_results(step, item, record, [answer], bucket, label)
            continue
        if isinstance(answer, ScoringError):
            item.fail(StepError(answer.detail, step=label))
            continue
        _add_results(
            step, item, record, answer if isinstance(answer, list) else [answer], bucket, label
        )
    for item, _ in pairs:
        if item.failure is None:
            results = fresh.get(id(item))
            if results is not None:
                item.results = results


def _apply_merged(pairs: list[tuple[Item, Record]], answers: list[Any], label: str) -> bool:
    """The hot path of a merging score step without `outputs`: every item sent one record and
    got one result object (or a `$error`). False, with nothing changed, when that is not so (a
    `ScoringError` answer, for one, is not a dict)."""
    if len(pairs) != len(answers):
        return False
    previous: Item | None = None
    for (item, _), answer in zip(pairs, answers, strict=True):
        if item is previous or type(answer) is not dict:
            return False  # an item with several records, or a list answer: the general path
        previous = item
    for (item, record), answer in zip(pairs, answers, strict=True):
        if "$error" in answer:
            item.fail(StepError(str(answer["$error"]), step=label))
        else:
            item.results = [record | answer]
    return True


def _add_results(
    step: ResolvedScoreStep,
    item: Item,
    record: Record,
    results: list[Any],
    bucket: list[Record],
    label: str,
) -> None:
    try:
        for result in results:
            if not isinstance(result, dict):
                raise TypeError(f"a result must be an object, got {type(result).__name__}")
            bucket.append(score_result(step, record, result))
    except KeyError as exc:
        item.fail(StepError(f"model output {exc.args[0]!r} is missing from the result", step=label))
    except TypeError as exc:
        item.fail(StepError(str(exc), step=label))
