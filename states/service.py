"""The one transition service: every change to a case goes through ``fire``.

``fire`` checks, in this order, that the event exists and is allowed from the
case's state, that the actor may fire it on this case, that the instant does
not go back in time, that the data is complete, and the table's guards; then
it changes the state, appends the history row, moves the deadline clock,
schedules or cancels tranches and adds outbox rows. It runs inside the
caller's transaction (``db.write_session``): all of it commits or nothing does.
A concurrent change of the same case raises ``Conflict``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Table, bindparam, insert, inspect, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, select

from states import money
from states.clock import now, paris_day, shift, show, start_of_day, utc
from states.errors import BadInput, Conflict, IllegalEvent, NotAllowed, NotFound, RuleViolation
from states.lifecycle import (
    BY_NAME,
    DEADLINE_CLOCK,
    LABELS,
    OPENING,
    PRE_CONTRACT,
    TERMINAL,
    Event,
    State,
    allowed_events,
    trigger,
)
from states.models import Candidate, Case, History, Outbox, Structure, Tranche
from states.policy import Policy
from states.rules import GUARDS, Context, active_contract_of_candidate, lock

_ACTOR = re.compile(r"^(admin|system|structure:\d+|candidate:\d+|prefet:(\d[0-9AB]|\d{3}))$")


def parse_actor(text: str) -> str:
    """Validate an actor: admin, system, structure:<id>, candidate:<id> or prefet:<département>."""
    if not _ACTOR.match(text or ""):
        raise BadInput(
            f"unknown actor '{text}': use admin, system, structure:<id>, candidate:<id> or prefet:<département>"
        )
    return text


# ---------------------------------------------------------------- data


def _text(event: str, key: str, value: Any) -> str:
    value = str(value).strip()
    if not value:
        raise BadInput(f"'{key}' of '{event}' is empty: give a value")
    return value


def _date(event: str, key: str, value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise BadInput(f"'{key}' of '{event}' must be a date YYYY-MM-DD, got '{value}'") from None


_AMOUNT = re.compile(r"^\d{1,7}([.,]\d{1,2})?$")


def _euros(event: str, key: str, value: Any) -> int:
    text = str(value).strip()
    if not _AMOUNT.match(text):
        raise BadInput(
            f"'{key}' of '{event}' must be a positive amount in euros with at most 2 decimals, "
            f"such as 1850.00, got '{value}'"
        )
    try:
        amount = Decimal(text.replace(",", "."))
    except InvalidOperation:
        raise BadInput(f"'{key}' of '{event}' must be an amount in euros such as 1850.00, got '{value}'") from None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise BadInput(
            f"'{key}' of '{event}' must be a positive amount in euros with at most 2 decimals, got '{value}'"
        )
    return int(amount * 100)


def _org(event: str, key: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadInput(f"'{key}' of '{event}' must be a training organisation id, got '{value}'") from None


_PARSERS: dict[str, tuple[str, Callable[[str, str, Any], Any]]] = {
    "org": ("org", _org),
    "type": ("type", _text),
    "start": ("start", _date),
    "end": ("end", _date),
    "salary": ("salary_cents", _euros),
    "reason": ("reason", _text),
    "date": ("date", _date),
}


def normalise_data(event: Event, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check the event's data keys and convert values (dates ISO, salary in cents)."""
    given = {k: v for k, v in raw.items() if v is not None and v != ""}
    allowed = set(event.data) | set(event.optional)
    unknown = sorted(set(given) - allowed)
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise BadInput(f"'{event.name}' takes no data {', '.join(unknown)}: its keys are {accepted}")
    missing = [k for k in event.data if k not in given]
    if missing:
        keys = " ".join(f"--set {k}=…" for k in missing)
        raise BadInput(f"'{event.name}' needs {', '.join(missing)}: add {keys}")
    out: dict[str, Any] = {}
    for key, value in given.items():
        name, parse = _PARSERS[key]
        out[name] = parse(event.name, key, value)
    return out


# ---------------------------------------------------------------- deadlines


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


def _start_clock(case: Case, start: datetime, policy: Policy) -> None:
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


# ---------------------------------------------------------------- outbox


def _payload(ctx: Context, **extra: Any) -> dict[str, Any]:
    case = ctx.case
    base = {
        "case_id": case.id,
        "structure_id": ctx.structure.id,
        "structure_name": ctx.structure.name,
        "departement": ctx.structure.departement,
        "candidate_name": ctx.candidate.name,
        "state": case.state,
        "state_label": LABELS[State(case.state)],
        "at": show(ctx.at),
        "deadline_at": show(case.deadline_at),
        "escalation_level": case.escalation_level,
    }
    base.update(extra)
    return base


# History, outbox and new tranche rows are only ever inserted: plain Core inserts, run at once in the
# transaction, cost far less than building ORM objects for the session to flush.
_OUTBOX_TABLE: Table = Outbox.__table__  # type: ignore[attr-defined]
_HISTORY_TABLE: Table = History.__table__  # type: ignore[attr-defined]
_TRANCHE_TABLE: Table = Tranche.__table__  # type: ignore[attr-defined]
_OUTBOX_INSERT = insert(_OUTBOX_TABLE)
_HISTORY_INSERT = insert(_HISTORY_TABLE)
_TRANCHE_INSERT = insert(_TRANCHE_TABLE)


def _outbox_rows(ctx: Context, kind: str, recipients: tuple[str, ...], **extra: Any) -> list[dict[str, Any]]:
    payload = _payload(ctx, **extra)
    return [
        {
            "case_id": ctx.case.id,
            "kind": kind,
            "recipient": recipient,
            "payload": payload,
            "created_at": ctx.at,
            "next_attempt_at": ctx.at,
        }
        for recipient in recipients
    ]


def notify(ctx: Context, kind: str, recipients: tuple[str, ...], **extra: Any) -> None:
    """Queue a notification of ``kind`` to each of ``recipients``, in the transition's transaction."""
    ctx.session.execute(_OUTBOX_INSERT, _outbox_rows(ctx, kind, recipients, **extra))


def _history(
    session: Session,
    case_id: int,
    event: str,
    source: str | None,
    dest: str,
    actor: str,
    at: datetime,
    data: dict[str, Any],
    flow_run_id: str | None,
) -> None:
    session.execute(
        _HISTORY_INSERT,
        {
            "case_id": case_id,
            "event": event,
            "from_state": source,
            "to_state": dest,
            "actor": actor,
            "at": at,
            "data": data,
            "flow_run_id": flow_run_id,
        },
    )


# ---------------------------------------------------------------- effects


# The statements the service runs on every transition are built once: building a
# SQLAlchemy statement costs more than running it from the compiled cache.
_TRANCHES = select(Tranche).where(col(Tranche.case_id) == bindparam("case_id")).order_by(col(Tranche.number))
_OTHER_OPEN_CASES = select(Case).where(
    col(Case.candidate_id) == bindparam("candidate_id"),
    col(Case.id) != bindparam("case_id"),
    col(Case.state).in_([s.value for s in PRE_CONTRACT]),
)
_OPEN_HERE = select(Case.id).where(
    col(Case.candidate_id) == bindparam("candidate_id"),
    col(Case.structure_id) == bindparam("structure_id"),
    col(Case.state).in_([s.value for s in PRE_CONTRACT]),
)
_LOAD_CASE = (
    select(Case, Structure, Candidate)
    .join(Structure, col(Structure.id) == col(Case.structure_id))
    .join(Candidate, col(Candidate.id) == col(Case.candidate_id))
    .where(col(Case.id) == bindparam("case_id"))
)
_LOAD_CASE_LOCKED = _LOAD_CASE.with_for_update(of=Case)
# a Core statement (no ORM synchronisation): see _on_pay
_PAY_TRANCHE = (
    update(_TRANCHE_TABLE)
    .where(_TRANCHE_TABLE.c.id == bindparam("tranche_id"), _TRANCHE_TABLE.c.status == "scheduled")
    .values(status="paid", paid_at=bindparam("paid_at"))
)
_TERMINAL_VALUES = frozenset(s.value for s in TERMINAL)
_CASE_TABLE: Table = Case.__table__  # type: ignore[attr-defined]
#: The columns a transition may change: all but the key, the version and the two parties.
_CASE_FIELDS = tuple(c.name for c in _CASE_TABLE.c if c.name not in ("id", "version", "structure_id", "candidate_id"))
_WRITE_CASE = (
    update(_CASE_TABLE)
    .where(_CASE_TABLE.c.id == bindparam("b_id"), _CASE_TABLE.c.version == bindparam("b_version"))
    .values({**{name: bindparam(f"b_{name}") for name in _CASE_FIELDS}, "version": bindparam("b_version") + 1})
)


def _tranches(session: Session, case_id: int) -> list[Tranche]:
    return list(session.exec(_TRANCHES, params={"case_id": case_id}))


def _on_select(ctx: Context) -> None:
    ctx.case.selected_at = ctx.at
    _start_clock(ctx.case, ctx.at, ctx.policy)


def _on_contact(ctx: Context) -> None:
    ctx.case.training_org_id = ctx.data["org"]


def _on_sign(ctx: Context) -> None:
    case, d = ctx.case, ctx.data
    start = date.fromisoformat(d["start"])
    end = date.fromisoformat(d["end"]) if d.get("end") else None
    case.contract_type, case.contract_start, case.contract_end, case.salary_cents = (
        d["type"],
        start,
        end,
        d["salary_cents"],
    )
    g = money.grant(ctx.policy, ctx.structure.kind, ctx.structure.departement, d["type"], start, end)
    case.funded_months, case.subsidy_cents = g.funded_months, g.subsidy_cents
    dues = (None, g.second_due, g.third_due)
    ctx.session.execute(
        _TRANCHE_INSERT,
        [
            {"case_id": case.id or 0, "number": number, "amount_cents": amount, "due_on": due}
            for number, (amount, due) in enumerate(zip(g.amounts, dues, strict=True), start=1)
        ],
    )
    _start_clock(case, start_of_day(start), ctx.policy)
    # the candidate leaves the pool: their other open cases close
    others = ctx.session.exec(_OTHER_OPEN_CASES, params={"candidate_id": case.candidate_id, "case_id": case.id}).all()
    for other in others:
        fire(
            ctx.session,
            other.id or 0,
            "withdraw",
            actor="system",
            at=max(ctx.at, utc(other.last_at)),
            data={"reason": f"contrat signé dans le dossier {case.id}"},
            policy=ctx.policy,
        )
    notify(
        ctx,
        "contract_signed",
        ("structure", "candidate"),
        contract_type=d["type"],
        contract_start=d["start"],
        contract_end=d.get("end"),
        subsidy_cents=g.subsidy_cents,
        funded_months=g.funded_months,
        tranches=[{"number": i + 1, "amount_cents": a} for i, a in enumerate(g.amounts)],
    )


def _on_start_training(ctx: Context) -> None:
    day = ctx.day()
    ctx.case.training_start = day
    _start_clock(ctx.case, start_of_day(day) if ctx.data.get("date") else ctx.at, ctx.policy)
    notify(
        ctx,
        "training_convocation",
        ("candidate", "training_org"),
        training_start=day.isoformat(),
        training_months=ctx.policy.training_months,
    )


def _on_complete_training(ctx: Context) -> None:
    day = ctx.day()
    ctx.case.in_post_on = day
    for t in _tranches(ctx.session, ctx.case.id or 0):
        if t.number == 1 and t.status == "scheduled":
            t.due_on = day
            ctx.session.add(t)


def _close_money(ctx: Context, ended: date) -> None:
    """Cancel unpaid tranches and record what was paid above the subsidy earned pro rata."""
    case = ctx.case
    case.ended_on = ended
    if case.subsidy_cents is None or case.contract_start is None:
        return
    paid = 0
    for t in _tranches(ctx.session, case.id or 0):
        if t.status == "scheduled":
            t.status = "cancelled"
            ctx.session.add(t)
        elif t.status == "paid":
            paid += t.amount_cents
    earned = money.earned(ctx.policy, case.subsidy_cents, case.funded_months or 0, case.contract_start, ended)
    case.recovery_cents = max(0, paid - earned)
    notify(
        ctx,
        "rupture",
        ("structure", "candidate"),
        reason=ctx.data.get("reason"),
        ended_on=ended.isoformat(),
        paid_cents=paid,
        earned_cents=earned,
        recovery_cents=case.recovery_cents,
    )
    if case.recovery_cents:
        notify(
            ctx,
            "recovery_order",
            ("structure",),
            paid_cents=paid,
            earned_cents=earned,
            recovery_cents=case.recovery_cents,
            ended_on=ended.isoformat(),
        )


def _on_break(ctx: Context) -> None:
    _close_money(ctx, ctx.day())


def _on_cancel(ctx: Context) -> None:
    if ctx.case.contract_start is not None:
        _close_money(ctx, max(ctx.case.contract_start, paris_day(ctx.at)))


def _on_time_out(ctx: Context) -> None:
    notify(ctx, "time_out", ("structure", "candidate", "prefet"))


def _on_deadline_step(ctx: Context) -> None:
    """A reminder or an escalation: raise the level, mark the step done, notify."""
    case, level = ctx.case, int(ctx.data["level"])
    case.escalation_level = max(case.escalation_level, level)
    case.due_step = int(ctx.data["step"]) + 1
    reschedule(case, ctx.policy)
    if ctx.event.name == "remind":
        notify(ctx, "reminder", ("structure",), due_at=ctx.data.get("due_at"))
    elif level >= 3:
        notify(ctx, "escalation_anct", ("anct",), due_at=ctx.data.get("due_at"))
    else:
        notify(ctx, "escalation_prefet", ("prefet",), due_at=ctx.data.get("due_at"))


def _on_pay(ctx: Context) -> None:
    tranche_id = int(ctx.data["tranche_id"])
    # The WHERE on status makes a second payment of the same tranche impossible, whatever the caller did
    # (a stale object in memory, a second process): the database decides, not the session. The statement
    # is plain Core, so the session neither flushes nor fetches for it; the tranche object of this session,
    # if loaded, gets the new values as committed ones (what synchronize_session="fetch" did, without its
    # extra SELECT and without making the object dirty, which would write the row a second time).
    done = ctx.session.execute(_PAY_TRANCHE, {"tranche_id": tranche_id, "paid_at": ctx.at})
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(
            f"tranche {ctx.data['number']} of case {ctx.case.id} is no longer scheduled: it was paid or "
            "cancelled meanwhile"
        )
    tranche = ctx.session.identity_map.get(ctx.session.identity_key(Tranche, tranche_id))
    if tranche is not None:
        set_committed_value(tranche, "status", "paid")
        set_committed_value(tranche, "paid_at", ctx.at)
    extra = {
        "tranche_number": ctx.data["number"],
        "amount_cents": ctx.data["amount_cents"],
        "subsidy_cents": ctx.case.subsidy_cents,
    }
    ctx.session.execute(  # the notice and the payment order, in one statement
        _OUTBOX_INSERT,
        _outbox_rows(ctx, "tranche_paid", ("structure",), **extra)
        + _outbox_rows(
            ctx, "payment_order", ("payment",), structure_kind=ctx.structure.kind, tranche_id=tranche_id, **extra
        ),
    )


EFFECTS: dict[str, Callable[[Context], None]] = {
    "select": _on_select,
    "contact_training_org": _on_contact,
    "sign_contract": _on_sign,
    "start_training": _on_start_training,
    "complete_training": _on_complete_training,
    "break_contract": _on_break,
    "cancel": _on_cancel,
    "time_out": _on_time_out,
    "remind": _on_deadline_step,
    "escalate": _on_deadline_step,
    "pay_tranche": _on_pay,
    "pay_final_tranche": _on_pay,
}


# ---------------------------------------------------------------- the service


class _Subject:
    """The plain object bound to the state machine (a SQLModel row cannot be)."""

    state: str

    def __init__(self, ctx: Context, state: str) -> None:
        self.ctx, self.state = ctx, state


for _name, _guard in GUARDS.items():
    setattr(_Subject, _name, lambda self, _event, guard=_guard: guard(self.ctx) is None)


def _check_actor(ctx: Context) -> None:
    actor, ev, case = ctx.actor, ctx.event, ctx.case
    kind, _, ref = actor.partition(":")
    if kind not in ev.who:
        raise NotAllowed(f"{actor} may not fire '{ev.name}' (rule: who acts): only {', '.join(ev.who)} may")
    owner = {
        "structure": str(case.structure_id),
        "candidate": str(case.candidate_id),
        "prefet": ctx.structure.departement,
    }.get(kind)
    if owner is not None and ref != owner:
        whose = f"département {owner}" if kind == "prefet" else f"{kind}:{owner}"
        raise NotAllowed(f"{actor} acts only on its own cases (rule: who acts): case {case.id} belongs to {whose}")


def load_case(session: Session, case_id: int, *, lock: bool = False) -> tuple[Case, Structure, Candidate]:
    """Return a case with its structure and candidate, in one query; ``lock`` takes the row lock."""
    row = session.exec(_LOAD_CASE_LOCKED if lock else _LOAD_CASE, params={"case_id": case_id}).first()
    if row is None:
        raise NotFound(f"case {case_id} does not exist: `conum list` shows the cases")
    return row


def _write_case(session: Session, case: Case) -> None:
    """Write the whole case row and move its version, in one UPDATE guarded by the version it was read at.

    What the ORM's flush of a versioned row does, as one prepared statement: the object is then marked
    as written (no second UPDATE at the next flush). Raises ``Conflict`` when another transaction moved
    the version meanwhile.
    """
    version = case.version
    values = {f"b_{name}": getattr(case, name) for name in _CASE_FIELDS}
    with session.no_autoflush:  # else the session would first write the case itself
        done = session.execute(_WRITE_CASE, {**values, "b_id": case.id, "b_version": version})
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"case {case.id} was changed by someone else meanwhile: read it again and retry")
    set_committed_value(case, "version", version + 1)
    # every column a transition changes is written: the object is as its row now, nothing left to flush
    # (the ORM's own post-flush step; SQLAlchemy offers no public call for it)
    state = inspect(case)
    state._commit_all(state.dict, session.identity_map)


def _record(ctx: Context, source: str | None, dest: str) -> None:
    case, session = ctx.case, ctx.session
    case.state = dest
    case.last_at = ctx.at  # every history row moves the version, even at the same instant
    if dest in _TERMINAL_VALUES:
        case.due_at = case.deadline_at = None
    try:
        if case in session and inspect(case).persistent:
            _write_case(session, case)
        else:
            session.add(case)
        if session.new or session.dirty or session.deleted:  # what the effects changed through the ORM
            session.flush()
    except StaleDataError:
        raise Conflict(f"case {case.id} was changed by someone else meanwhile: read it again and retry") from None
    # after the case's UPDATE, so that this insert does not autoflush the case (a second UPDATE) before it
    _history(session, case.id or 0, ctx.event.name, source, dest, ctx.actor, ctx.at, ctx.data, ctx.flow_run_id)


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
) -> Case:
    """Fire ``event`` on a case for ``actor`` at instant ``at``; return the case after it."""
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
) -> Case:
    """``fire`` on a case the caller has loaded and locked with its structure and candidate.

    ``actor`` is already checked and ``at`` is a UTC instant.
    """
    case_id = case.id
    state = State(case.state)
    ev = BY_NAME.get(event)
    if ev is None or (ev.internal and not internal) or state not in ev.sources:
        allowed = ", ".join(allowed_events(state)) or "none (the case is closed)"
        what = (
            "unknown event"
            if ev is None
            else "an event the sweep or payment run fires itself"
            if ev.internal
            else "not allowed from it"
        )
        raise IllegalEvent(
            f"case {case_id} is in state '{state}'; '{event}' is {what} (rule: lifecycle). "
            f"Events allowed from {state}: {allowed}"
        )
    if expected_version is not None and case.version != expected_version:
        raise Conflict(f"case {case_id} is at version {case.version}, not {expected_version}: read it again and retry")
    ctx = Context(session, case, structure, candidate, ev, actor, at, {}, policy, flow_run_id)
    _check_actor(ctx)
    if at < utc(case.last_at):
        raise RuleViolation(
            f"case {case_id}'s history ends at {show(case.last_at)}; an event at {show(at)} would go back in time "
            "(rule: history moves forward): give an instant on or after it",
            rule="chronology",
        )
    ctx.data = dict(data or {}) if internal else normalise_data(ev, data or {})
    subject = _Subject(ctx, state.value)
    if not trigger(subject, ev.name):
        raise RuleViolation(f"'{event}' was refused by a rule of the programme", rule="guard")
    dest = subject.state
    if DEADLINE_CLOCK.get(State(dest)) is None and dest != state.value:
        case.clock_start, case.due_step = None, 0
        reschedule(case, policy)
    case.state = dest
    effect = EFFECTS.get(ev.name)
    if effect:
        # One flush per transition, in _record. What is pending here is this case's own change (and the
        # tranches sign_contract adds): the effects' reads (other cases of the candidate, this case's
        # tranches) do not depend on it, so they need not flush it first. Whatever the caller left pending
        # was flushed by load_case's query.
        with session.no_autoflush:
            effect(ctx)
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
) -> Case:
    """Open a case: present a candidate of the pool to a structure."""
    at = utc(at or now())
    if parse_actor(actor) != "admin":
        raise NotAllowed(f"{actor} may not present a candidate (rule: who acts): only admin may")
    structure = session.get(Structure, structure_id)
    if structure is None:
        raise NotFound(f"structure {structure_id} does not exist: add it with `conum structure add`")
    candidate = session.get(Candidate, candidate_id)
    if candidate is None:
        raise NotFound(f"candidate {candidate_id} does not exist: add it with `conum candidate add`")
    lock(session, Candidate, candidate_id)
    holding = active_contract_of_candidate(session, candidate_id)
    if holding is not None:
        raise RuleViolation(
            f"candidate {candidate_id} holds an active contract in case {holding.id} (rule: one contract per "
            "candidate): present another candidate",
            rule="candidate_contract",
        )
    open_here = session.exec(_OPEN_HERE, params={"candidate_id": candidate_id, "structure_id": structure_id}).first()
    if open_here is not None:
        raise RuleViolation(
            f"candidate {candidate_id} is already presented to structure {structure_id} in case {open_here} "
            "(rule: one open case per candidate and structure): follow that case",
            rule="duplicate",
        )
    case = Case(
        structure_id=structure_id,
        candidate_id=candidate_id,
        state=State.CANDIDATE_PRESENTED.value,
        last_at=at,
        presented_at=at,
    )
    _start_clock(case, at, policy)
    session.add(case)
    session.flush()
    ctx = Context(session, case, structure, candidate, OPENING, actor, at, {}, policy, flow_run_id)
    notify(ctx, "candidate_presented", ("structure",))
    _history(session, case.id or 0, OPENING.name, None, case.state, actor, at, {}, flow_run_id)
    return case


@dataclass
class Step:
    """What the sweep did to one case."""

    case_id: int
    action: str  # remind | escalate | time_out
    level: int
    due_at: datetime


def apply_due_step(session: Session, case: Case, at: datetime, policy: Policy) -> Step | None:
    """Apply the furthest deadline step due on ``case`` at ``at``; return it, or None if nothing is due."""
    return _apply_due_step(session, case, None, at, policy)


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


def _apply_due_step(
    session: Session, case: Case, rows: tuple[Structure, Candidate] | None, at: datetime, policy: Policy
) -> Step | None:
    index = due_step(case, policy, at)
    if index is None:
        return None
    clock = DEADLINE_CLOCK[State(case.state)]
    step = policy.deadlines[clock].steps[index]
    due = shift(case.clock_start or at, step.days, step.months)
    when = max(at, utc(case.last_at))
    if step.action == "time_out":
        data: dict[str, Any] = {"due_at": show(due)}
    else:
        data = {"step": index, "level": step.level, "due_at": show(due)}
    _fire_system(session, case, rows, step.action, when, policy, data)
    return Step(case.id or 0, step.action, step.level, due)


def pay_case_tranches(session: Session, case: Case, at: datetime, policy: Policy) -> list[Tranche]:
    """Pay the tranches of an in-post case due on or before ``at``, in order; return those paid."""
    return _pay_case_tranches(session, case, None, None, at, policy)


def _pay_case_tranches(
    session: Session,
    case: Case,
    rows: tuple[Structure, Candidate] | None,
    tranches: list[Tranche] | None,
    at: datetime,
    policy: Policy,
) -> list[Tranche]:
    """``pay_case_tranches`` with, from the batch run, the case's rows and tranches already loaded."""
    today = paris_day(at)
    paid: list[Tranche] = []
    if tranches is None:
        tranches = _tranches(session, case.id or 0)
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
