"""Deadlines as data: each open state's clock, its due steps, and where the sweep stands.

A state's clock starts at an instant (``DEADLINE_CLOCK`` of the table says
which); the policy gives its steps (reminder, escalations, time-out) in days or
months from that start. The case keeps ``clock_start``, the next step not yet
done (``due_step``), when that step falls (``due_at``, what the sweep selects
on) and the state's deadline (``deadline_at``). Nothing waits in a process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from states.clock import shift
from states.lifecycle import DEADLINE_CLOCK, State
from states.models import Case
from states.policy import Policy
from states.policy import Step as PolicyStep


@dataclass
class Step:
    """What the sweep did to one case."""

    case_id: int
    action: str  # remind | escalate | time_out
    level: int
    due_at: datetime


def reschedule(case: Case, policy: Policy) -> None:
    """Set ``deadline_at`` and ``due_at`` from the state's clock and the next step not yet done."""
    clock = DEADLINE_CLOCK.get(State(case.state))
    if clock is None or case.clock_start is None:
        case.deadline_at = case.due_at = None
        return
    c = policy.deadlines[clock]
    case.deadline_at = shift(case.clock_start, c.deadline_days, c.deadline_months)
    if case.due_step < len(c.steps):
        step = c.steps[case.due_step]
        case.due_at = shift(case.clock_start, step.days, step.months)
    else:
        case.due_at = None


def start_clock(case: Case, start: datetime, policy: Policy) -> None:
    """Start the clock of the case's state at ``start``: no step done, no escalation."""
    case.clock_start, case.due_step, case.escalation_level = start, 0, 0
    reschedule(case, policy)


def due_step(case: Case, policy: Policy, at: datetime) -> int | None:
    """Return the furthest step due on or before ``at`` that is not done yet (earlier ones are superseded)."""
    clock = DEADLINE_CLOCK.get(State(case.state))
    if clock is None or case.clock_start is None:
        return None
    found = None
    steps = policy.deadlines[clock].steps
    for i in range(case.due_step, len(steps)):
        if shift(case.clock_start, steps[i].days, steps[i].months) <= at:
            found = i
    return found


def step_of(case: Case, policy: Policy, index: int, at: datetime) -> tuple[PolicyStep, datetime]:
    """Return the step ``index`` of the case's clock and the instant it falls due (``at`` if no clock runs)."""
    step = policy.deadlines[DEADLINE_CLOCK[State(case.state)]].steps[index]
    return step, shift(case.clock_start or at, step.days, step.months)
