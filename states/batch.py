"""The batch work the schedules run: the deadline sweep and the tranche payments.

Both work in chunks, one write transaction per chunk, and are safe to run
twice at once or again after a crash: a deadline step moves the case's
``due_at`` past the sweep's instant in the same transaction that acts on it,
and a tranche goes from ``scheduled`` to ``paid`` only once. On SQLite the
chunks' transactions serialise (``BEGIN IMMEDIATE``); on PostgreSQL each
chunk locks its rows with ``FOR UPDATE SKIP LOCKED`` so concurrent runs share
the work. One case that fails is reported and skipped; the rest goes on.

A run never reports success with due work left undone: on PostgreSQL, the due
cases another transaction holds (another run, an operator's action) are waited
for, up to ``wait`` seconds, and done once free; those still held then are
reported in ``held``, and the callers make that a non-zero outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from states import service, writes
from states.applications import service as applications
from states.clock import not_in_future, paris_day, utc
from states.db import is_sqlite, read_session, write_session
from states.deadlines import Step
from states.errors import ConumError
from states.lifecycle import State
from states.models import Candidate, Case, Structure, Tranche
from states.policy import Policy
from states.rows import columns, read_all

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


@dataclass
class SweepReport:
    reminded: int = 0
    escalated: int = 0
    timed_out: int = 0
    steps: list[Step] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)
    held: list[int] = field(default_factory=list)
    #: the steps applied to structures' applications, and the applications skipped (``states.applications``)
    application_steps: list[Step] = field(default_factory=list)
    application_failures: dict[int, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {"reminded": self.reminded, "escalated": self.escalated, "timed_out": self.timed_out}


@dataclass
class Payment:
    case_id: int
    structure_id: int
    number: int
    amount_cents: int
    final: bool


@dataclass
class PayReport:
    payments: list[Payment] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)
    held: list[int] = field(default_factory=list)

    @property
    def paid(self) -> int:
        return len(self.payments)

    @property
    def amount_cents(self) -> int:
        return sum(p.amount_cents for p in self.payments)


Progress = Callable[[int], None]

#: How long a batch run waits, at most, for due cases another transaction holds before reporting them held.
HELD_WAIT_SECONDS = 10.0
#: How often it looks again meanwhile.
_HELD_POLL_SECONDS = 0.2

_CHUNK_TRANCHES = (
    select(Tranche)
    .where(col(Tranche.case_id).in_(bindparam("case_ids", expanding=True)))
    .order_by(col(Tranche.case_id), col(Tranche.number))
)


#: What a batch run does to one case it selected: what it did (steps, payments), empty if nothing was due after all.
Work = Callable[[Session, Case, tuple[Structure, Candidate]], list[Any]]


def _in_chunks(
    engine: Engine,
    due: Select[Case, Structure, Candidate],
    work: Work,
    done: Callable[[list[Any]], None],
    failures: dict[int, str],
    chunk: int,
    progress: Callable[[], None] | None,
    prepare: Callable[[Session, Sequence[Case]], None] | None = None,
    *,
    held: list[int],
    wait: float | None = None,
) -> None:
    """Run ``work`` on each case ``due`` selects (with its structure and candidate), one write
    transaction per chunk; ``done`` receives what each chunk did once it is committed.

    ``prepare`` loads, once per chunk, what else ``work`` needs of the chunk's cases (the cases
    are locked by then). A case whose work fails is left unchanged, reported in ``failures`` and
    not selected again; a case on which ``work`` did nothing is not selected again.
    On PostgreSQL, due cases locked by another transaction are skipped, looked at again until
    ``wait`` seconds have passed, and those still due and locked then are put in ``held``.
    """
    skip: set[int] = set()
    give_up = time.monotonic() + max(0.0, HELD_WAIT_SECONDS if wait is None else wait)
    while True:
        _chunks(engine, due, work, done, failures, chunk, progress, prepare, skip)
        if is_sqlite(engine):
            return  # writers run one at a time there: nothing due was held
        with read_session(engine) as session:
            left = [i for i in session.scalars(due.with_only_columns(col(Case.id))) if i and i not in skip]
        if not left:
            return
        if time.monotonic() >= give_up:
            held.extend(sorted(left))
            logger.warning("%s due case(s) held by another transaction: %s", len(left), left)
            return
        time.sleep(min(_HELD_POLL_SECONDS, max(0.0, give_up - time.monotonic())))


def _chunks(
    engine: Engine,
    due: Select[Case, Structure, Candidate],
    work: Work,
    done: Callable[[list[Any]], None],
    failures: dict[int, str],
    chunk: int,
    progress: Callable[[], None] | None,
    prepare: Callable[[Session, Sequence[Case]], None] | None,
    skip: set[int],
) -> None:
    """One pass of ``_in_chunks`` over the due cases not locked by others.

    A chunk's writes are gathered and run together at its end (``states.writes``), each guarded as a
    single transition guards them. Should a guard miss (a row changed by another transaction in
    spite of the lock), the chunk is rolled back whole and done again case by case, each case in a
    savepoint of its own, which names the changed case and writes the others once.
    """
    one_by_one = False
    # the chunk's cases as plain columns, read on the driver (``states.rows``) while none is skipped
    plain = due.with_only_columns(*_COLUMNS).limit(chunk)
    if not is_sqlite(engine):
        plain = plain.with_for_update(skip_locked=True, of=Case)
    while True:
        results: list[Any] = []
        failed: dict[int, str] = {}
        idle: set[int] = set()
        try:
            with write_session(engine) as session:
                found = None if skip else read_all(session, plain, {}, _MODELS)
                if found is not None:
                    rows: Sequence[Any] = found
                else:
                    q = due.limit(chunk)
                    if skip:
                        q = q.where(col(Case.id).not_in(skip))
                    if not is_sqlite(engine):
                        q = q.with_for_update(skip_locked=True, of=Case)
                    rows = session.exec(q).all()
                if not rows:
                    return
                if prepare:
                    prepare(session, [row[0] for row in rows])
                if one_by_one:
                    _one_by_one(session, rows, work, results, failed, idle)
                else:
                    with writes.deferred(session) as pending:
                        for case, structure, candidate in rows:
                            mark = pending.mark()
                            try:
                                did = work(session, case, (structure, candidate))
                            except ConumError as exc:
                                pending.undo(mark)  # none of this case's writes
                                if case in session:
                                    session.expunge(case)  # nor what its failed transition left in memory
                                failed[case.id or 0] = str(exc)
                                continue
                            if not did:
                                idle.add(case.id or 0)
                            results.extend(did)
                        pending.flush(session)
        except writes.ChunkConflict as exc:
            if one_by_one:
                raise  # not gathered then: cannot happen
            logger.warning("%s: the chunk is done again case by case", exc)
            one_by_one = True
            continue
        one_by_one = False
        for case_id, reason in failed.items():
            logger.warning("case %s skipped: %s", case_id, reason)
        failures.update(failed)
        skip.update(failed, idle)
        done(results)
        if progress:
            progress()
        if len(rows) < chunk:
            return  # every due case was in this chunk: each is done, failed or had nothing due after all


def _one_by_one(
    session: Session,
    rows: Sequence[tuple[Case, Structure, Candidate]],
    work: Work,
    results: list[Any],
    failed: dict[int, str],
    idle: set[int],
) -> None:
    """Run ``work`` on each case of a chunk at once, each in a savepoint: a case that fails is rolled back alone."""
    for case, structure, candidate in rows:
        try:
            with session.begin_nested():
                did = work(session, case, (structure, candidate))
        except ConumError as exc:
            failed[case.id or 0] = str(exc)
            continue
        if not did:
            idle.add(case.id or 0)
        results.extend(did)


_MODELS = (Case, Structure, Candidate)
_COLUMNS = columns(*_MODELS)


def _due(*where: Any) -> Select[Case, Structure, Candidate]:
    """Select the cases ``where`` says, each with its structure and candidate (what ``fire`` needs)."""
    return (
        select(Case, Structure, Candidate)
        .join(Structure, col(Structure.id) == col(Case.structure_id))
        .join(Candidate, col(Candidate.id) == col(Case.candidate_id))
        .where(*where)
    )


def sweep(
    engine: Engine,
    at: datetime,
    policy: Policy,
    chunk: int = 500,
    progress: Progress | None = None,
    wait: float | None = None,
) -> SweepReport:
    """Send each reminder, escalation and time-out due on or before ``at``, exactly once.

    Cases another transaction holds are waited for up to ``wait`` seconds (default ``HELD_WAIT_SECONDS``),
    then reported in ``held``.
    """
    at = utc(not_in_future(at, "the sweep"))
    report = SweepReport()

    def work(session: Session, case: Case, rows: tuple[Structure, Candidate]) -> list[Step]:
        step = service.apply_due_step(session, case, at, policy, rows=rows)
        return [] if step is None else [step]

    def done(steps: list[Step]) -> None:
        for step in steps:
            report.steps.append(step)
            if step.action == "remind":
                report.reminded += 1
            elif step.action == "escalate":
                report.escalated += 1
            else:
                report.timed_out += 1

    due = _due(col(Case.due_at) <= at).order_by(col(Case.due_at), col(Case.id))
    _in_chunks(
        engine,
        due,
        work,
        done,
        report.failures,
        chunk,
        progress and (lambda: progress(len(report.steps))),
        held=report.held,
        wait=wait,
    )
    report.application_steps, report.application_failures = applications.sweep(engine, at, policy, chunk)
    return report


def pay(
    engine: Engine,
    at: datetime,
    policy: Policy,
    chunk: int = 500,
    progress: Progress | None = None,
    wait: float | None = None,
) -> PayReport:
    """Pay each tranche due on or before ``at`` of the cases in post, exactly once.

    Cases another transaction holds are waited for up to ``wait`` seconds (default ``HELD_WAIT_SECONDS``),
    then reported in ``held``.
    """
    at = utc(not_in_future(at, "the payment run"))
    today = paris_day(at)
    report = PayReport()
    tranches: dict[int, list[Tranche]] = {}

    def prepare(session: Session, cases: Sequence[Case]) -> None:
        tranches.clear()
        for t in session.exec(_CHUNK_TRANCHES, params={"case_ids": [c.id for c in cases]}):
            tranches.setdefault(t.case_id, []).append(t)

    def work(session: Session, case: Case, rows: tuple[Structure, Candidate]) -> list[Payment]:
        paid = service.pay_case_tranches(session, case, at, policy, rows=rows, tranches=tranches.get(case.id or 0, []))
        final = case.state == State.TRANCHES_PAID.value
        return [
            Payment(case.id or 0, case.structure_id, t.number, t.amount_cents, final and t is paid[-1]) for t in paid
        ]

    # driven by the tranches due (their index on status and due day), not by a scan of the cases in post
    has_due = (
        select(col(Tranche.case_id))
        .where(col(Tranche.status) == "scheduled", col(Tranche.due_on) <= today)
        .scalar_subquery()
    )
    due = _due(col(Case.state) == State.IN_POST.value, col(Case.id).in_(has_due)).order_by(col(Case.id))
    _in_chunks(
        engine,
        due,
        work,
        report.payments.extend,
        report.failures,
        chunk,
        progress and (lambda: progress(report.paid)),
        prepare,
        held=report.held,
        wait=wait,
    )
    return report
