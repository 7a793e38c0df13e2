"""Deadlines: the sweep reminds, escalates and times out exactly at the policy's boundaries, once.

Times without an offset are Europe/Paris wall-clock times.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import col, select

from states import batch
from states.clock import parse_instant
from states.db import read_session
from states.models import Outbox
from states.views import get_case

#: What a user is told of each kind of step: (outbox kind, recipients).
NOTICE = {
    ("remind", 1): {("reminder", "structure")},
    ("escalate", 2): {("escalation_prefet", "prefet")},
    ("escalate", 3): {("escalation_anct", "anct")},
    ("time_out", 0): {("time_out", "structure"), ("time_out", "candidate"), ("time_out", "prefet")},
}


def outbox(world: Any, case: int) -> list[tuple[str, str]]:
    with read_session(world.engine) as s:
        rows = s.exec(select(Outbox).where(Outbox.case_id == case).order_by(col(Outbox.id))).all()
        return [(r.kind, r.recipient) for r in rows]


def swept(world: Any, case: int, at: str) -> tuple[list[dict], set[tuple[str, str]], dict]:
    """Run the sweep at ``at``; return the case's new history rows, its new outbox rows and its view."""
    before, sent = get_case(world.engine, case)["history"], outbox(world, case)
    batch.sweep(world.engine, parse_instant(at), world.policy)
    view = get_case(world.engine, case)
    new_history = view["history"][len(before) :]
    assert outbox(world, case)[: len(sent)] == sent
    return new_history, set(outbox(world, case)[len(sent) :]), view


def assert_nothing_at(world: Any, case: int, at: str) -> None:
    history, notices, _ = swept(world, case, at)
    assert (history, notices) == ([], set())


def assert_step_at(world: Any, case: int, at: str, action: str, level: int, state: str) -> dict:
    """Check the sweep at ``at`` does one step: one history row by ``system`` and its notifications."""
    history, notices, view = swept(world, case, at)
    assert [(h["event"], h["actor"]) for h in history] == [(action, "system")]
    assert notices == NOTICE[(action, level)]
    assert view["state"] == state
    if level:
        assert view["escalation_level"] == level
    return view


@pytest.fixture
def presented(world: Any) -> int:
    """A case presented on 2026-03-01 at 10:00 (Paris)."""
    return world.present(world.structure(), world.candidate(), at="2026-03-01T10:00")


@pytest.fixture
def selected(world: Any, presented: int) -> int:
    """The presented case, selected on 2026-03-02 at 10:00."""
    world.fire(presented, "select", "2026-03-02T10:00")
    return presented


def test_presented_case_is_reminded_at_day_10(world: Any, presented: int) -> None:
    assert_nothing_at(world, presented, "2026-03-11T09:59")
    view = assert_step_at(world, presented, "2026-03-11T10:00", "remind", 1, "candidate_presented")
    assert view["due_at"] == "2026-03-16T10:00:00+01:00"


def test_presented_case_expires_at_day_15_same_wall_clock_time(world: Any, presented: int) -> None:
    assert get_case(world.engine, presented)["deadline_at"] == "2026-03-16T10:00:00+01:00"
    swept(world, presented, "2026-03-11T10:00")
    assert_nothing_at(world, presented, "2026-03-15T23:59")
    assert_nothing_at(world, presented, "2026-03-16T09:59")
    view = assert_step_at(world, presented, "2026-03-16T10:00", "time_out", 0, "expired")
    assert (view["deadline_at"], view["due_at"]) == (None, None)


def test_selected_case_is_reminded_escalated_then_expires(world: Any, selected: int) -> None:
    world.fire(selected, "contact_training_org", "2026-03-05T10:00", org=str(world.org))  # the clock runs on
    steps = [
        ("2026-03-12T09:59", "2026-03-12T10:00", "remind", 1, "training_org_contacted"),  # day 10
        ("2026-03-17T09:59", "2026-03-17T10:00", "escalate", 2, "training_org_contacted"),  # day 15: the préfet
        ("2026-04-01T09:59", "2026-04-01T10:00", "escalate", 3, "training_org_contacted"),  # day 30: the ANCT
        ("2026-04-16T09:59", "2026-04-16T10:00", "time_out", 0, "expired"),  # day 45
    ]
    for minute_before, at, action, level, state in steps:
        assert_nothing_at(world, selected, minute_before)
        assert_step_at(world, selected, at, action, level, state)
    assert get_case(world.engine, selected)["history"][-1]["from"] == "training_org_contacted"


@pytest.mark.parametrize(
    ("at", "action", "level", "state"),
    [
        ("2026-03-22T10:00", "escalate", 2, "selected"),  # day 20: reminder superseded by the préfet
        ("2026-04-10T10:00", "escalate", 3, "selected"),  # day 39: straight to the ANCT
        ("2026-05-01T10:00", "time_out", 0, "expired"),  # day 60: only the time-out
    ],
)
def test_late_sweep_applies_only_the_furthest_missed_step(
    world: Any, selected: int, at: str, action: str, level: int, state: str
) -> None:
    assert_step_at(world, selected, at, action, level, state)


def test_late_sweep_expires_a_presented_case_with_one_history_row(world: Any, presented: int) -> None:
    assert_step_at(world, presented, "2026-06-01T10:00", "time_out", 0, "expired")


def test_each_step_happens_once_across_repeated_sweeps(world: Any, selected: int) -> None:
    assert_step_at(world, selected, "2026-03-12T10:00", "remind", 1, "selected")
    assert_nothing_at(world, selected, "2026-03-12T10:00")
    assert_nothing_at(world, selected, "2026-03-14T10:00")
    assert_nothing_at(world, selected, "2026-03-11T10:00")  # a sweep with an earlier instant, too
    assert_step_at(world, selected, "2026-03-17T10:00", "escalate", 2, "selected")
    assert_nothing_at(world, selected, "2026-03-17T10:00")
    events = [h["event"] for h in get_case(world.engine, selected)["history"]]
    assert events == ["present", "select", "remind", "escalate"]


def test_sweep_report_counts_each_kind_of_step(world: Any) -> None:
    cases = [world.present(world.structure(), world.candidate(), at="2026-03-01T10:00") for _ in range(4)]
    for case in cases[2:]:
        world.fire(case, "select", "2026-03-02T10:00")
    world.fire(cases[3], "decline", "2026-03-03T10:00", reason="poste pourvu")
    report = batch.sweep(world.engine, parse_instant("2026-03-17T10:00"), world.policy)
    # two presented cases expire (day 16); the selected one is escalated to the préfet; the declined one rests
    assert report.counts() == {"reminded": 0, "escalated": 1, "timed_out": 2}
    assert report.failures == {}
    assert {s.case_id for s in report.steps} == set(cases[:3])


@pytest.mark.parametrize(
    ("presented_at", "deadline", "minute_before"),
    [
        ("2026-03-20T10:00+01:00", "2026-04-04T10:00:00+02:00", "2026-04-04T09:59+02:00"),  # spring forward
        ("2026-10-20T10:00+02:00", "2026-11-04T10:00:00+01:00", "2026-11-04T09:59+01:00"),  # fall back
    ],
)
def test_deadline_keeps_the_paris_wall_clock_across_a_dst_change(
    world: Any, presented_at: str, deadline: str, minute_before: str
) -> None:
    case = world.present(world.structure(), world.candidate(), at=presented_at)
    assert get_case(world.engine, case)["deadline_at"] == deadline
    swept(world, case, minute_before)
    assert get_case(world.engine, case)["state"] == "candidate_presented"
    assert_step_at(world, case, deadline, "time_out", 0, "expired")
    assert get_case(world.engine, case)["history"][-1]["data"]["due_at"] == deadline


def test_training_not_started_30_days_after_contract_start_escalates(world: Any) -> None:
    case = world.signed(start="2026-04-01")
    assert_nothing_at(world, case, "2026-04-30T23:59")
    view = assert_step_at(world, case, "2026-05-01T00:00", "escalate", 2, "contract_signed")
    assert view["history"][-1]["data"]["level"] == 2
    assert_nothing_at(world, case, "2026-06-01T00:00")


def test_training_started_in_time_is_not_escalated(world: Any) -> None:
    case = world.signed(start="2026-04-01")
    world.fire(case, "start_training", "2026-04-20T10:00", date="2026-04-20")
    assert_nothing_at(world, case, "2026-05-01T00:00")


def test_training_not_completed_4_months_and_15_days_after_start_escalates(world: Any) -> None:
    case = world.signed(start="2026-04-01")
    world.fire(case, "start_training", "2026-04-10T10:00", date="2026-04-10")
    assert_nothing_at(world, case, "2026-08-24T23:59")
    assert_step_at(world, case, "2026-08-25T00:00", "escalate", 2, "in_training")
    assert_nothing_at(world, case, "2026-12-01T00:00")


def test_conseiller_in_post_is_not_swept(world: Any) -> None:
    case = world.signed(start="2026-04-01")
    world.fire(case, "start_training", "2026-04-10T10:00", date="2026-04-10")
    world.fire(case, "complete_training", "2026-08-10T10:00", date="2026-08-10")
    assert_nothing_at(world, case, "2027-12-01T00:00")


@pytest.mark.parametrize("closing", ["decline", "withdraw", "cancel"])
def test_closed_case_is_not_swept(world: Any, presented: int, closing: str) -> None:
    world.fire(presented, closing, "2026-03-05T10:00", **({} if closing == "withdraw" else {"reason": "motif"}))
    assert_nothing_at(world, presented, "2026-06-01T10:00")
