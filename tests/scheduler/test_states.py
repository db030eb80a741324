"""The job state machine: every allowed path, and that nothing else is allowed."""

from __future__ import annotations

import pytest

from scheduler.states import Event, InvalidTransition, State, advance


def run(*events: Event) -> list[tuple[State, str | None]]:
    state, outcome, seen = State.PENDING, None, []
    for event in events:
        step = advance(state, event, outcome)
        state, outcome = step.state, step.outcome
        seen.append((state, step.task))
    return seen


def test_a_successful_job_goes_through_every_task():
    assert run(Event.INSTALL_STARTED, Event.INSTALLED, Event.SCORING_DONE, Event.FINALLY_DONE) == [
        (State.INSTALLING, "install"),
        (State.RUNNING, "wait"),
        (State.STOPPING, "finally"),
        (State.SUCCEEDED, None),
    ]


@pytest.mark.parametrize(
    ("events", "end"),
    [
        ((Event.INSTALL_STARTED, Event.INSTALL_FAILED, Event.FINALLY_DONE), State.FAILED),
        (
            (Event.INSTALL_STARTED, Event.INSTALLED, Event.WAIT_FAILED, Event.FINALLY_DONE),
            State.FAILED,
        ),
        ((Event.CANCEL, Event.FINALLY_DONE), State.CANCELLED),
        ((Event.INSTALL_STARTED, Event.CANCEL, Event.FINALLY_DONE), State.CANCELLED),
        (
            (Event.INSTALL_STARTED, Event.INSTALLED, Event.CANCEL, Event.FINALLY_DONE),
            State.CANCELLED,
        ),
        (
            (Event.INSTALL_STARTED, Event.INSTALLED, Event.CANCEL, Event.FINALLY_FAILED),
            State.FAILED,
        ),
        (
            (Event.INSTALL_STARTED, Event.INSTALLED, Event.SCORING_DONE, Event.FINALLY_FAILED),
            State.FAILED,
        ),
    ],
)
def test_every_job_ends_after_its_finally_task(events, end):
    seen = run(*events)
    assert seen[-2][0] == State.STOPPING
    assert seen[-1] == (end, None)


def test_cancel_while_stopping_changes_nothing_and_keeps_the_outcome():
    step = advance(State.STOPPING, Event.CANCEL, State.SUCCEEDED)
    assert (step.state, step.outcome) == (State.STOPPING, State.SUCCEEDED)


@pytest.mark.parametrize("state", [State.SUCCEEDED, State.FAILED, State.CANCELLED])
@pytest.mark.parametrize("event", list(Event))
def test_finished_jobs_take_no_event(state, event):
    with pytest.raises(InvalidTransition):
        advance(state, event)


def test_events_out_of_order_are_refused():
    with pytest.raises(InvalidTransition):
        advance(State.PENDING, Event.SCORING_DONE)
    with pytest.raises(InvalidTransition):
        advance(State.INSTALLING, Event.FINALLY_DONE)
