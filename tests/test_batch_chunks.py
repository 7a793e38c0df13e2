"""A batch chunk's writes gathered and run together: each guard kept, nothing written twice.

The sweep and the payment run write a chunk's rows with one statement per table at the chunk's end
(``states.writes``). These tests make a row move under a chunk the way another transaction would if it
slipped past the lock (an UPDATE of the case or the tranche in the chunk's own transaction, before the
chunk's writes run) and check what an operator sees: the chunk is done again case by case, each step
and tranche lands once, the hash chains hold, and a case that stays changed is reported, not written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import walked_cases
from sqlalchemy import Engine, func, text
from sqlmodel import Session, col, select

from states import audit, batch, service
from states.clock import parse_instant
from states.db import get_engine, read_session
from states.errors import RuleViolation
from states.models import Case, History, Outbox, Tranche
from states.policy import Policy

SWEEP_AT = parse_instant("2026-03-12T11:00")  # the day-10 reminder of each case presented on 2 March is due
PAY_AT = parse_instant("2026-08-04T08:00")  # the first tranche of each case in post is due
CHUNK = 3
N = 7  # three chunks: 3, 3 and 1


@pytest.fixture
def presented(db_url: str) -> Iterator[tuple[Engine, list[int]]]:
    cases = walked_cases(db_url, N, to="presented")
    engine = get_engine(db_url)
    yield engine, cases
    engine.dispose()


@pytest.fixture
def in_post(db_url: str) -> Iterator[tuple[Engine, list[int]]]:
    cases = walked_cases(db_url, N, to="in_post")
    engine = get_engine(db_url)
    yield engine, cases
    engine.dispose()


def _count(engine: Engine, model: Any, *where: Any) -> dict[int, int]:
    with read_session(engine) as s:
        rows = s.exec(select(col(model.case_id), func.count()).where(*where).group_by(col(model.case_id))).all()
    return {case_id: n for case_id, n in rows}


def _meddle(
    monkeypatch: pytest.MonkeyPatch, name: str, victim: int, times: int, meddle: Callable[[Any], None]
) -> list[int]:
    """Wrap ``service.<name>`` so that, the first ``times`` times it runs on ``victim``, ``meddle(session)``
    first changes a row behind the batch's back (in its own transaction). Return the list of calls made."""
    real = getattr(service, name)
    calls: list[int] = []

    def wrapped(session: Session, case: Case, *args: Any, **kwargs: Any) -> Any:
        calls.append(case.id or 0)
        if case.id == victim and calls.count(victim) <= times:
            meddle(session)
        return real(session, case, *args, **kwargs)

    monkeypatch.setattr(service, name, wrapped)
    return calls


def _bump_version(case_id: int) -> Callable[[Any], None]:
    return lambda session: session.execute(
        text("UPDATE recruitment_case SET version = version + 1 WHERE id = :id"), {"id": case_id}
    )


def test_a_sweep_in_chunks_writes_each_reminder_once(presented: tuple[Engine, list[int]]) -> None:
    engine, cases = presented
    report = batch.sweep(engine, SWEEP_AT, Policy(), chunk=CHUNK)
    assert sorted(s.case_id for s in report.steps) == cases
    assert report.reminded == N and not report.failures
    assert _count(engine, History, col(History.event) == "remind") == dict.fromkeys(cases, 1)
    assert _count(engine, Outbox, col(Outbox.kind) == "reminder") == dict.fromkeys(cases, 1)
    assert audit.verify(engine).ok
    with read_session(engine) as s:
        assert {c.due_step for c in s.exec(select(Case))} == {1}
        # the rows are written in the order of the cases, as one transition after another would
        order = [h.case_id for h in s.exec(select(History).where(History.event == "remind").order_by(col(History.id)))]
    assert order == cases
    # run again: nothing left due, nothing written
    again = batch.sweep(engine, SWEEP_AT, Policy(), chunk=CHUNK)
    assert again.steps == [] and _count(engine, History, col(History.event) == "remind") == dict.fromkeys(cases, 1)


def test_a_case_changed_under_the_chunk_makes_it_run_again_case_by_case(
    presented: tuple[Engine, list[int]], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine, cases = presented
    victim = cases[4]  # in the second chunk
    calls = _meddle(monkeypatch, "apply_due_step", victim, times=1, meddle=_bump_version(victim))
    with caplog.at_level(logging.WARNING, logger="states.batch"):
        report = batch.sweep(engine, SWEEP_AT, Policy(), chunk=CHUNK)
    assert "done again case by case" in caplog.text
    assert calls.count(victim) == 2  # the chunk was rolled back (the meddling with it) and done again
    assert sorted(s.case_id for s in report.steps) == cases and report.reminded == N and not report.failures
    assert _count(engine, History, col(History.event) == "remind") == dict.fromkeys(cases, 1)
    assert _count(engine, Outbox, col(Outbox.kind) == "reminder") == dict.fromkeys(cases, 1)
    assert audit.verify(engine).ok


def test_a_case_that_stays_changed_is_reported_and_the_others_done_once(
    presented: tuple[Engine, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, cases = presented
    victim = cases[1]
    with read_session(engine) as s:
        before = s.get_one(Case, victim).model_dump()
    _meddle(monkeypatch, "apply_due_step", victim, times=10, meddle=_bump_version(victim))
    report = batch.sweep(engine, SWEEP_AT, Policy(), chunk=CHUNK)
    assert "changed by someone else" in report.failures[victim]
    assert sorted(s.case_id for s in report.steps) == [c for c in cases if c != victim]
    assert _count(engine, History, col(History.event) == "remind") == {c: 1 for c in cases if c != victim}
    assert _count(engine, Outbox, col(Outbox.kind) == "reminder") == {c: 1 for c in cases if c != victim}
    with read_session(engine) as s:
        assert s.get_one(Case, victim).model_dump() == before  # untouched: the meddling was rolled back too
    assert audit.verify(engine).ok


def test_a_case_refused_in_a_gathered_chunk_leaves_no_row(
    presented: tuple[Engine, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, cases = presented
    victim = cases[3]
    real = service.apply_due_step

    def refuse_after_writing(session: Session, case: Case, *args: Any, **kwargs: Any) -> Any:
        step = real(session, case, *args, **kwargs)  # its rows are gathered, its object changed in memory
        if case.id == victim:
            raise RuleViolation("refused on purpose", rule="guard")
        return step

    monkeypatch.setattr(service, "apply_due_step", refuse_after_writing)
    report = batch.sweep(engine, SWEEP_AT, Policy(), chunk=CHUNK)
    assert report.failures == {victim: "refused on purpose"}
    assert _count(engine, History, col(History.event) == "remind") == {c: 1 for c in cases if c != victim}
    assert _count(engine, Outbox, col(Outbox.kind) == "reminder") == {c: 1 for c in cases if c != victim}
    with read_session(engine) as s:
        case = s.get_one(Case, victim)
    assert (case.version, case.due_step, case.escalation_level) == (1, 0, 0)
    assert audit.verify(engine).ok


def test_a_tranche_paid_under_the_chunk_is_paid_once(
    in_post: tuple[Engine, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, cases = in_post
    victim = cases[2]

    def pay_behind(session: Any) -> None:
        session.execute(text("UPDATE tranche SET status = 'paid' WHERE case_id = :id AND number = 1"), {"id": victim})

    calls = _meddle(monkeypatch, "pay_case_tranches", victim, times=1, meddle=pay_behind)
    report = batch.pay(engine, PAY_AT, Policy(), chunk=CHUNK)
    assert calls.count(victim) == 2 and not report.failures
    assert sorted((p.case_id, p.number) for p in report.payments) == [(c, 1) for c in cases]
    assert _count(engine, Outbox, col(Outbox.kind) == "payment_order") == dict.fromkeys(cases, 1)
    assert _count(engine, History, col(History.event) == "pay_tranche") == dict.fromkeys(cases, 1)
    assert _count(engine, Tranche, col(Tranche.status) == "paid") == dict.fromkeys(cases, 1)
    assert audit.verify(engine).ok
