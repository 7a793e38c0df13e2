"""Deadlines as data: each open state's clock, its due steps, and where the sweep stands.

A state's clock starts at an instant (``DEADLINE_CLOCK`` of the table says
which); the policy gives its steps (reminder, escalations, time-out) in days or
months from that start. The case keeps ``clock_start``, the next step not yet
done (``due_step``), when that step falls (``due_at``, what the sweep selects
on) and the state's deadline (``deadline_at``). Nothing waits in a process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from states.clock import shift
from states.lifecycle import DEADLINE_CLOCK
from states.policy import Policy
from states.policy import Step as PolicyStep


class Clocked(Protocol):
    """A row with a deadline clock: a case, or a structure's application."""

    state: str
    clock_start: datetime | None
    due_step: int
    due_at: datetime | None
    deadline_at: datetime | None
    escalation_level: int


#: Which clock each state runs (by state name); a table other than the case's passes its own.
Clocks = Mapping[Any, str]


@dataclass
class Step:
    """What the sweep did to one case."""

    case_id: int
    action: str  # remind | escalate | time_out
    level: int
    due_at: datetime


def reschedule(case: Clocked, policy: Policy, clocks: Clocks = DEADLINE_CLOCK) -> None:
    """Set ``deadline_at`` and ``due_at`` from the state's clock and the next step not yet done."""
    clock = clocks.get(case.state)
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


def start_clock(case: Clocked, start: datetime, policy: Policy, clocks: Clocks = DEADLINE_CLOCK) -> None:
    """Start the clock of the case's state at ``start``: no step done, no escalation."""
    case.clock_start, case.due_step, case.escalation_level = start, 0, 0
    reschedule(case, policy, clocks)


def due_step(case: Clocked, policy: Policy, at: datetime, clocks: Clocks = DEADLINE_CLOCK) -> int | None:
    """Return the furthest step due on or before ``at`` that is not done yet (earlier ones are superseded)."""
    clock = clocks.get(case.state)
    if clock is None or case.clock_start is None:
        return None
    found = None
    steps = policy.deadlines[clock].steps
    for i in range(case.due_step, len(steps)):
        if shift(case.clock_start, steps[i].days, steps[i].months) <= at:
            found = i
    return found


def step_of(
    case: Clocked, policy: Policy, index: int, at: datetime, clocks: Clocks = DEADLINE_CLOCK
) -> tuple[PolicyStep, datetime]:
    """Return the step ``index`` of the case's clock and the instant it falls due (``at`` if no clock runs)."""
    step = policy.deadlines[clocks[case.state]].steps[index]
    return step, shift(case.clock_start or at, step.days, step.months)
