"""The one transition service: every change to a case goes through ``fire``.

``fire`` checks, in this order, that the event exists and is allowed from the
case's state (the table, through its machine), the guards every event passes
(who may act, a history that moves forward), that the data fits the event's
model, and the event's own guards; then the event's effect (``states.effects``)
runs, the case row is written and the history row appended. It runs inside the
caller's transaction (``db.write_session``): all of it commits or nothing does.
A concurrent change of the same case raises ``Conflict``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session

from states import audit, rows, writes
from states.clock import now, paris_day, show, utc
from states.deadlines import Step, due_step, reschedule, start_clock, step_of
from states.effects import announce, apply, tranches_of
from states.errors import Conflict, NotAllowed, NotFound, RuleViolation, illegal_event
from states.eventdata import normalise
from states.lifecycle import BY_NAME, COMMON_GUARDS, DEADLINE_CLOCK, OPENING, TERMINAL, Event, State, allowed_events
from states.machine import LIFECYCLE_VERSION, trigger
from states.models import Candidate, Case, History, HistoryNote, Structure, Tranche
from states.policy import Policy
from states.rows import load_case
from states.rules import GUARDS, Context, check, parse_actor

__all__ = ["Step", "apply_due_step", "fire", "load_case", "parse_actor", "pay_case_tranches", "present"]

_HISTORY_INSERT = insert(History.__table__)  # type: ignore[attr-defined]
_NOTE_INSERT = insert(HistoryNote.__table__)  # type: ignore[attr-defined]


def _history(
    session: Session,
    case: Case,
    event: Event,
    source: str | None,
    dest: str,
    actor: str,
    at: datetime,
    data: dict[str, Any],
    flow_run_id: str | None,
    created_by: str | None = None,
) -> Callable[[], None]:
    """Chain the history row of a step to the case (``history_hash``); return what inserts it.

    Free text a person typed (a reason) goes to ``history_note``, not into the row: it is personal data,
    which privacy work scrubs without rewriting the history. Call the returned function once the case
    row is written (an insert before would make the session write the case first).
    """
    free = event.data.free_text_keys()
    kept = {k: v for k, v in data.items() if k not in free} if free else data
    notes = {k: str(v) for k, v in data.items() if k in free} if free else {}
    row = audit.chained_row(
        "case_id",
        case.id or 0,
        case.history_hash,
        event=event.name,
        from_state=source,
        to_state=dest,
        actor=actor,
        at=at,
        data=kept,
        flow_run_id=flow_run_id,
        created_by=created_by,
    )
    case.history_hash = row["hash"]

    def insert() -> None:
        if not notes:
            writes.write(session, _HISTORY_INSERT, row)  # at once, or with the batch chunk's other rows
            return
        writes.flush_pending(session)  # the notes need the row's key now
        done = session.execute(_HISTORY_INSERT, row)
        history_id = done.inserted_primary_key[0]  # type: ignore[attr-defined]
        session.execute(
            _NOTE_INSERT,
            [{"history_id": history_id, "case_id": case.id, "key": k, "text": v} for k, v in notes.items()],
        )

    return insert


_TERMINAL_VALUES = frozenset(s.value for s in TERMINAL)


class _Subject:
    """The plain object bound to the state machine (a SQLModel row cannot be)."""

    state: str

    def __init__(self, ctx: Context, state: str) -> None:
        self.ctx, self.state = ctx, state


for _name, _guard in GUARDS.items():
    setattr(_Subject, _name, lambda self, _event, guard=_guard: guard(self.ctx) is None)


@lru_cache(maxsize=8)
def _policy_digest(policy_json: str) -> str:
    return audit.digest(json.loads(policy_json))


def _policy_version(policy: Policy) -> str:
    """The digest of the policy a case runs under (computed once per policy)."""
    return _policy_digest(policy.model_dump_json())


def _record(ctx: Context, source: str | None, dest: str) -> None:
    case, session = ctx.case, ctx.session
    case.state = dest
    case.last_at = ctx.at  # every history row moves the version, even at the same instant
    if dest in _TERMINAL_VALUES:
        case.due_at = case.deadline_at = None
    insert_history = _history(
        session, case, ctx.event, source, dest, ctx.actor, ctx.at, ctx.data, ctx.flow_run_id, ctx.created_by
    )  # chains the row: the case row written below holds its hash
    try:
        if instance_state(case).key is not None:  # a row of the database (in the session or read apart)
            rows.CASE.write(session, case)
        else:
            session.add(case)
        if session.new or session.deleted:  # effects write through Core; only a new case is left to the ORM
            session.flush()
    except StaleDataError:
        raise Conflict(f"case {case.id} was changed by someone else meanwhile: read it again and retry") from None
    insert_history()


def _cascade(session: Session, policy: Policy) -> Any:
    """Return how an effect fires an event on another case (as ``system``, in the same transaction)."""

    def cascade(other: Case, event: str, at: datetime, data: dict[str, Any]) -> None:
        fire(session, other.id or 0, event, actor="system", at=at, data=data, policy=policy, internal=True)

    return cascade


def fire(
    session: Session,
    case_id: int,
    event: str,
    *,
    actor: str = "admin",
    at: datetime | None = None,
    data: Mapping[str, Any] | None = None,
    policy: Policy,
    flow_run_id: str | None = None,
    expected_version: int | None = None,
    internal: bool = False,
    created_by: str | None = None,
) -> Case:
    """Fire ``event`` on a case for ``actor`` at instant ``at``; return the case after it.

    ``flow_run_id`` and ``created_by`` (who created that run, where the Prefect server knows it) go into
    the history row beside the declared actor.
    """
    at = utc(at or now())
    actor = parse_actor(actor)
    case, structure, candidate = load_case(session, case_id, lock=True)
    return _fire_loaded(
        session,
        case,
        structure,
        candidate,
        event,
        actor=actor,
        at=at,
        data=data,
        policy=policy,
        flow_run_id=flow_run_id,
        expected_version=expected_version,
        internal=internal,
        created_by=created_by,
    )


def _fire_loaded(
    session: Session,
    case: Case,
    structure: Structure,
    candidate: Candidate,
    event: str,
    *,
    actor: str,
    at: datetime,
    data: Mapping[str, Any] | None,
    policy: Policy,
    flow_run_id: str | None = None,
    expected_version: int | None = None,
    internal: bool = False,
    created_by: str | None = None,
) -> Case:
    """``fire`` on a case the caller has loaded and locked with its structure and candidate.

    ``actor`` is already checked and ``at`` is a UTC instant.
    """
    case_id = case.id
    state = State(case.state)
    ev = BY_NAME.get(event)
    if ev is None or (ev.internal and not internal) or state not in ev.sources:
        known, swept = ev is not None, ev is not None and ev.internal
        raise illegal_event(
            f"case {case_id}", state, event, known, swept, allowed_events(state), "the sweep or payment run"
        )
    if expected_version is not None and case.version != expected_version:
        raise Conflict(f"case {case_id} is at version {case.version}, not {expected_version}: read it again and retry")
    ctx = Context(
        session,
        case,
        structure,
        candidate,
        ev,
        actor,
        at,
        {},
        policy,
        flow_run_id,
        created_by=created_by,
        internal=internal,
        cascade=_cascade(session, policy),
    )
    check(ctx, COMMON_GUARDS)
    ctx.data = dict(data or {}) if internal else normalise(ev.name, ev.data, data or {})
    subject = _Subject(ctx, state.value)
    if not trigger(subject, ev.name):
        raise RuleViolation(f"'{event}' was refused by a rule of the programme", rule="guard")
    dest = subject.state
    if DEADLINE_CLOCK.get(State(dest)) is None and dest != state.value:
        case.clock_start, case.due_step = None, 0
        reschedule(case, policy)
    case.state = dest
    # One flush per transition, in _record. What is pending here is this case's own change (and the
    # tranches sign_contract adds): the effects' reads (other cases of the candidate, this case's
    # tranches) do not depend on it, so they need not flush it first. Whatever the caller left pending
    # was flushed by load_case's query.
    with session.no_autoflush:
        apply(ctx)  # the effect, then its notifications (states.notifications)
    _record(ctx, state.value, dest)
    return case


def present(
    session: Session,
    structure_id: int,
    candidate_id: int,
    *,
    actor: str = "admin",
    at: datetime | None = None,
    policy: Policy,
    flow_run_id: str | None = None,
    created_by: str | None = None,
) -> Case:
    """Open a case: present a candidate of the pool to a structure."""
    at = utc(at or now())
    if parse_actor(actor).partition(":")[0] not in OPENING.who:
        raise NotAllowed(
            f"{actor} may not present a candidate (rule: actor_may_fire): only {', '.join(OPENING.who)} may",
            rule="actor_may_fire",
        )
    structure = rows.get_row(session, Structure, structure_id)
    if structure is None:
        raise NotFound(f"structure {structure_id} does not exist: add it with `conum structure add`")
    candidate = rows.get_row(session, Candidate, candidate_id)
    if candidate is None:
        raise NotFound(f"candidate {candidate_id} does not exist: add it with `conum candidate add`")
    case = Case(
        structure_id=structure_id,
        candidate_id=candidate_id,
        state=State.CANDIDATE_PRESENTED.value,
        last_at=at,
        presented_at=at,
        lifecycle_version=LIFECYCLE_VERSION,
        policy_version=_policy_version(policy),
    )
    ctx = Context(session, case, structure, candidate, OPENING, actor, at, {}, policy, flow_run_id, created_by)
    check(ctx, OPENING.guards)
    start_clock(case, at, policy)
    rows.insert_case(session, case)
    announce(ctx)
    with session.no_autoflush:  # the end of the chain is written below without moving the version
        _history(session, case, OPENING, None, case.state, actor, at, {}, flow_run_id, created_by)()
        session.execute(rows.SET_CHAIN_END, {"case_id": case.id, "history_hash": case.history_hash})
    set_committed_value(case, "history_hash", case.history_hash)
    return case


def _fire_system(
    session: Session,
    case: Case,
    rows: tuple[Structure, Candidate] | None,
    event: str,
    at: datetime,
    policy: Policy,
    data: dict[str, Any],
) -> Case:
    """Fire an internal event as ``system``; ``rows`` are the case's structure and candidate when the
    caller has loaded them and holds the case's row lock (the batch runs), else the case is loaded and locked."""
    if rows is None:
        case, structure, candidate = load_case(session, case.id or 0, lock=True)
    else:
        structure, candidate = rows
    return _fire_loaded(
        session, case, structure, candidate, event, actor="system", at=utc(at), data=data, policy=policy, internal=True
    )


def apply_due_step(
    session: Session, case: Case, at: datetime, policy: Policy, rows: tuple[Structure, Candidate] | None = None
) -> Step | None:
    """Apply the furthest deadline step due on ``case`` at ``at``; return it, or None if nothing is due.

    ``rows`` are the case's structure and candidate when the caller (a batch run) has loaded them and
    holds the case's row lock; else the case is loaded and locked here.
    """
    index = due_step(case, policy, at)
    if index is None:
        return None
    step, due = step_of(case, policy, index, at)
    when = max(at, utc(case.last_at))
    if step.action == "time_out":
        data: dict[str, Any] = {"due_at": show(due)}
    else:
        data = {"step": index, "level": step.level, "due_at": show(due)}
    _fire_system(session, case, rows, step.action, when, policy, data)
    return Step(case.id or 0, step.action, step.level, due)


def pay_case_tranches(
    session: Session,
    case: Case,
    at: datetime,
    policy: Policy,
    rows: tuple[Structure, Candidate] | None = None,
    tranches: list[Tranche] | None = None,
) -> list[Tranche]:
    """Pay the tranches of an in-post case due on or before ``at``, in order; return those paid.

    A batch run passes the case's structure and candidate (``rows``, the case locked) and its tranches,
    loaded for a whole chunk at once.
    """
    today = paris_day(at)
    paid: list[Tranche] = []
    if tranches is None:
        tranches = tranches_of(session, case.id or 0)
    scheduled = [t for t in tranches if t.status == "scheduled"]
    for t in scheduled:
        if t.due_on is None or t.due_on > today or case.state != State.IN_POST.value:
            break
        last = t is scheduled[-1]
        data = {"tranche_id": t.id, "number": t.number, "amount_cents": t.amount_cents, "due_on": t.due_on.isoformat()}
        event = "pay_final_tranche" if last else "pay_tranche"
        case = _fire_system(session, case, rows, event, max(at, utc(case.last_at)), policy, data)
        # the case is loaded and locked now: the next tranches fire on it without loading it again
        rows = rows or (session.get_one(Structure, case.structure_id), session.get_one(Candidate, case.candidate_id))
        paid.append(t)
    return paid
