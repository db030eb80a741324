"""The job state machine, in one place (DESIGN.md section 3).

Pure, no I/O. States: PENDING -> INSTALLING (task install) -> RUNNING (task wait) -> STOPPING
(task finally) -> SUCCEEDED | FAILED | CANCELLED. While STOPPING, `outcome` holds the state the
job ends in once the finally task has run; a failing finally task makes it FAILED (as in
Tekton, Failed wins over Cancelled). `advance` is the only way a job changes state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.StrEnum):
    """A job's state."""

    PENDING = "PENDING"
    INSTALLING = "INSTALLING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED})


class Event(enum.StrEnum):
    """What happened to a job's pipeline."""

    INSTALL_STARTED = "install-started"
    INSTALLED = "installed"
    INSTALL_FAILED = "install-failed"
    SCORING_DONE = "scoring-done"  # every batch flow completed
    WAIT_FAILED = "wait-failed"
    CANCEL = "cancel"
    FINALLY_DONE = "finally-done"
    FINALLY_FAILED = "finally-failed"


TASK = {
    State.PENDING: None,
    State.INSTALLING: "install",
    State.RUNNING: "wait",
    State.STOPPING: "finally",
}

# (state, event) -> (next state, outcome set while STOPPING)
_TABLE: dict[tuple[State, Event], tuple[State, State | None]] = {
    (State.PENDING, Event.INSTALL_STARTED): (State.INSTALLING, None),
    (State.PENDING, Event.CANCEL): (State.STOPPING, State.CANCELLED),
    (State.INSTALLING, Event.INSTALLED): (State.RUNNING, None),
    (State.INSTALLING, Event.INSTALL_FAILED): (State.STOPPING, State.FAILED),
    (State.INSTALLING, Event.CANCEL): (State.STOPPING, State.CANCELLED),
    # every batch flow completed while install still ran, on a runner whose install cannot ask
    # again when it ends (Tekton's runs in a pod): scoring is over before RUNNING
    (State.INSTALLING, Event.SCORING_DONE): (State.STOPPING, State.SUCCEEDED),
    (State.RUNNING, Event.SCORING_DONE): (State.STOPPING, State.SUCCEEDED),
    (State.RUNNING, Event.WAIT_FAILED): (State.STOPPING, State.FAILED),
    (State.RUNNING, Event.CANCEL): (State.STOPPING, State.CANCELLED),
}


class InvalidTransition(Exception):
    """An event that cannot happen in the job's current state."""

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"a job in state {state} cannot take event {event}")
        self.state = state
        self.event = event


@dataclass(frozen=True)
class Step:
    """The result of one transition."""

    state: State
    task: str | None
    outcome: State | None


def advance(state: State, event: Event, outcome: State | None = None) -> Step:
    """The next state for `event`; `outcome` is the pending end state while STOPPING."""
    if state == State.STOPPING:
        if event == Event.FINALLY_DONE and outcome is not None:
            return Step(outcome, None, None)
        if event == Event.FINALLY_FAILED:
            return Step(State.FAILED, None, None)
        if event == Event.CANCEL:  # already stopping: nothing changes
            return Step(state, TASK[state], outcome)
        raise InvalidTransition(state, event)
    try:
        nxt, new_outcome = _TABLE[(state, event)]
    except KeyError:
        raise InvalidTransition(state, event) from None
    return Step(nxt, TASK.get(nxt), new_outcome)
