"""Coalescing concurrent records requests into one model call (no waiting, no timer).

No I/O. A numeric model that scores on the event loop pays a fixed cost per call
(scikit-learn's input validation is about 0.2 ms, as much as scoring 256 iris rows). When
several requests for the same model are ready in the same event-loop pass (their bodies are
in, their handlers reached `score`), they are scored with one call and each gets its own
answer. Nothing waits for more requests to come: a lone request is scored as soon as the
handlers that were already runnable have run. A request that is the only one of its model in
the service (`track`: none other is reading its body or waiting to be scored) cannot be joined
by any, so it is scored at once, without the loop hop (one connection at a time pays nothing
for coalescing). Only models whose result for a row does not depend on the other rows of the
call use it (`LoadedModel.coalesce`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Answer = tuple[bytes, int]
"""An encoded records answer and how many of its items are errors."""
ScoreMany = Callable[[list[list[dict[str, Any]]]], list["Answer | BaseException"]]

DEFAULT_MAX_ROWS = 8192
"""Requests are put together up to this many rows per call: past it the fixed cost is small
next to the scoring, and a bigger call would only delay the first request."""


class Coalescer:
    """Collects the requests of one event-loop pass and scores them with `score_many`."""

    def __init__(self, score_many: ScoreMany, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self._score_many = score_many
        self.max_rows = max_rows
        self._pending: list[tuple[list[dict[str, Any]], asyncio.Future[Answer]]] = []
        self.requests = 0
        """Requests to the model being handled (inside `track`)."""

    @contextmanager
    def track(self) -> Iterator[None]:
        """Around the handling of one request to the model, from before its body is read."""
        self.requests += 1
        try:
            yield
        finally:
            self.requests -= 1

    async def score(self, records: list[dict[str, Any]]) -> Answer:
        """This request's answer, scored together with the others of this loop pass; at once
        when it is the only request to the model being handled (`track`)."""
        if self.requests == 1 and not self._pending:
            answer = self._score_many([records])[0]
            if isinstance(answer, BaseException):
                raise answer
            return answer
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answer] = loop.create_future()
        self._pending.append((records, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        group: list[tuple[list[dict[str, Any]], asyncio.Future[Answer]]] = []
        rows = 0
        for job in pending:
            if group and rows + len(job[0]) > self.max_rows:
                self._run(group)
                group, rows = [], 0
            group.append(job)
            rows += len(job[0])
        if group:
            self._run(group)

    def _run(self, group: list[tuple[list[dict[str, Any]], asyncio.Future[Answer]]]) -> None:
        try:
            answers = self._score_many([records for records, _ in group])
        except Exception as exc:  # a bug of the model class: each request gets it (a 500)
            answers = [exc] * len(group)
        if len(answers) != len(group):  # never leave a request waiting
            error = RuntimeError(f"{len(answers)} answers for {len(group)} requests")
            answers = [error] * len(group)
        for (_, future), answer in zip(group, answers, strict=True):
            if future.done():  # the request was cancelled meanwhile
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)
