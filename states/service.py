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

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Table, bindparam, insert, inspect, update
from sqlalchemy.orm import Mapper, configure_mappers
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, select

from states import audit, prepared, writes
from states.clock import now, paris_day, show, utc
from states.deadlines import Step, due_step, reschedule, start_clock, step_of
from states.effects import announce, apply, tranches_of
from states.errors import Conflict, NotAllowed, NotFound, RuleViolation, illegal_event
from states.eventdata import normalise
from states.lifecycle import BY_NAME, COMMON_GUARDS, DEADLINE_CLOCK, OPENING, TERMINAL, Event, State, allowed_events
from states.machine import LIFECYCLE_VERSION, trigger
from states.models import Candidate, Case, History, HistoryNote, Structure, Tranche
from states.policy import Policy
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


# The statements the service runs on every transition are built once.
_CASE_TABLE: Table = Case.__table__  # type: ignore[attr-defined]
_STRUCTURE_TABLE: Table = Structure.__table__  # type: ignore[attr-defined]
_CANDIDATE_TABLE: Table = Candidate.__table__  # type: ignore[attr-defined]
#: a case with its structure and candidate, as plain columns (``states.prepared`` runs it on the driver)
_LOAD_CASE = (
    select(*_CASE_TABLE.c, *_STRUCTURE_TABLE.c, *_CANDIDATE_TABLE.c)
    .join_from(_CASE_TABLE, _STRUCTURE_TABLE, _STRUCTURE_TABLE.c.id == _CASE_TABLE.c.structure_id)
    .join(_CANDIDATE_TABLE, _CANDIDATE_TABLE.c.id == _CASE_TABLE.c.candidate_id)
    .where(_CASE_TABLE.c.id == bindparam("case_id"))
)
_LOAD_CASE_LOCKED = _LOAD_CASE.with_for_update(of=_CASE_TABLE)
#: each model of the loaded row, with its columns' names, in the row's order
_LOADED = tuple(
    (model, tuple(c.name for c in table.c))
    for model, table in ((Case, _CASE_TABLE), (Structure, _STRUCTURE_TABLE), (Candidate, _CANDIDATE_TABLE))
)
#: The row lock of a case's candidate, taken before the case's own (see ``load_case``).
_LOCK_CANDIDATE_OF_CASE = (
    select(Candidate.id)
    .join(Case, col(Case.candidate_id) == col(Candidate.id))
    .where(col(Case.id) == bindparam("case_id"))
    .with_for_update(of=Candidate)
)
_TERMINAL_VALUES = frozenset(s.value for s in TERMINAL)
#: The columns a transition may change: all but the key, the version and the two parties.
_CASE_FIELDS = tuple(c.name for c in _CASE_TABLE.c if c.name not in ("id", "version", "structure_id", "candidate_id"))
_CASE_FIELD_SET = frozenset(_CASE_FIELDS)
_CASE_BINDS = tuple((name, f"b_{name}") for name in _CASE_FIELDS)
_SET_CHAIN_END = (
    update(_CASE_TABLE).where(_CASE_TABLE.c.id == bindparam("case_id")).values(history_hash=bindparam("history_hash"))
)
_WRITE_CASE = (
    update(_CASE_TABLE)
    .where(_CASE_TABLE.c.id == bindparam("b_id"), _CASE_TABLE.c.version == bindparam("b_version"))
    .values({**{name: bindparam(f"b_{name}") for name in _CASE_FIELDS}, "version": bindparam("b_version") + 1})
)


class _Subject:
    """The plain object bound to the state machine (a SQLModel row cannot be)."""

    state: str

    def __init__(self, ctx: Context, state: str) -> None:
        self.ctx, self.state = ctx, state


for _name, _guard in GUARDS.items():
    setattr(_Subject, _name, lambda self, _event, guard=_guard: guard(self.ctx) is None)


def load_case(session: Session, case_id: int, *, lock: bool = False) -> tuple[Case, Structure, Candidate]:
    """Return a case with its structure and candidate, in one query; ``lock`` takes the row lock.

    Lock order (PostgreSQL): the candidate's row, then the case's, then the structure's (``within_quota``),
    then the candidate's other cases (signing withdraws them). Every transition takes them in that order,
    so that two signings of one candidate, each closing the other's case, wait for each other instead of
    deadlocking: the second finds its case withdrawn and is refused. The batch runs lock cases only
    (``SKIP LOCKED``) and fire no event that takes a candidate's or a structure's lock. SQLite needs no
    row lock: its write transactions run one at a time.
    """
    if lock and session.get_bind().dialect.name != "sqlite":
        session.exec(_LOCK_CANDIDATE_OF_CASE, params={"case_id": case_id}).first()
    with session.no_autoflush:  # the effects write through Core: nothing of the ORM's is left to write first
        row = prepared.first(session, _LOAD_CASE_LOCKED if lock else _LOAD_CASE, {"case_id": case_id})
    if row is None:
        raise NotFound(f"case {case_id} does not exist: `conum list` shows the cases")
    loaded = []
    start = 0
    for model, names in _LOADED:
        end = start + len(names)
        loaded.append(_persistent(session, model, dict(zip(names, row[start:end], strict=True))))
        start = end
    case, structure, candidate = loaded
    return case, structure, candidate


@cache
def _mapper(model: type[Any]) -> Mapper[Any]:
    configure_mappers()  # as the ORM's first query would (the attributes' instrumentation)
    return inspect(model)


def _persistent(session: Session, model: type[Any], values: dict[str, Any]) -> Any:
    """The object of a row just read: the one the session holds already, else one made from ``values``.

    What the ORM does when it loads a row, without its result machinery: an object the session holds is
    returned as it is; else a new one is made as the ORM makes it (no ``__init__``), with the row's identity.
    That one is left out of the session (detached): a transition writes the case itself, through
    ``_write_case``, and nothing else of it; a later read in the same session reads the row again.
    """
    mapper = _mapper(model)
    key = mapper.identity_key_from_primary_key((values["id"],))
    held = session.identity_map.get(key)
    if held is not None:
        return held
    obj = mapper.class_manager.new_instance()
    obj.__dict__.update(values)
    instance_state(obj).key = key
    return obj


def _write_case(session: Session, case: Case) -> None:
    """Write the whole case row and move its version, in one UPDATE guarded by the version it was read at.

    What the ORM's flush of a versioned row does, as one prepared statement: the object is then marked
    as written (no second UPDATE at the next flush). Raises ``Conflict`` when another transaction moved
    the version meanwhile.
    """
    state = instance_state(case)
    loaded = state.dict
    version = case.version
    values = {bind: loaded[name] if name in loaded else getattr(case, name) for name, bind in _CASE_BINDS}
    with session.no_autoflush:  # else the session would first write the case itself
        writes.write(
            session,
            _WRITE_CASE,
            {**values, "b_id": case.id, "b_version": version},
            conflict=f"case {case.id} was changed by someone else meanwhile: read it again and retry",
        )
    # every column a transition changes is written: the object is as its row now, nothing left to flush
    # (marked at once as the session marks a row it has flushed, rather than column by column)
    if not state.committed_state.keys() <= _CASE_FIELD_SET:
        raise RuntimeError(f"a transition changed {sorted(state.committed_state)}: only {_CASE_FIELDS} are written")
    loaded["version"] = version + 1
    state._commit_all(loaded, state._instance_dict())


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
            _write_case(session, case)
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
    structure = session.get(Structure, structure_id)
    if structure is None:
        raise NotFound(f"structure {structure_id} does not exist: add it with `conum structure add`")
    candidate = session.get(Candidate, candidate_id)
    if candidate is None:
        raise NotFound(f"candidate {candidate_id} does not exist: add it with `conum candidate add`")
    case = Case(
        structure_id=structure_id,
        candidate_id=candidate_id,
        state=State.CANDIDATE_PRESENTED.value,
        last_at=at,
        presented_at=at,
        lifecycle_version=LIFECYCLE_VERSION,
        policy_version=audit.digest(policy.model_dump(mode="json")),
    )
    ctx = Context(session, case, structure, candidate, OPENING, actor, at, {}, policy, flow_run_id, created_by)
    check(ctx, OPENING.guards)
    start_clock(case, at, policy)
    session.add(case)
    session.flush()
    announce(ctx)
    with session.no_autoflush:  # the end of the chain is written below without moving the version
        _history(session, case, OPENING, None, case.state, actor, at, {}, flow_run_id, created_by)()
        session.execute(_SET_CHAIN_END, {"case_id": case.id, "history_hash": case.history_hash})
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
