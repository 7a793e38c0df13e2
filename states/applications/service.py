"""The one transition service of applications: submit, import, fire, and the deadline steps.

``fire`` checks, in this order, that the event is allowed from the
application's state (the table, through its ``transitions`` machine), the
guards every event passes, the event's data against its model and the event's
own guards; then its effect runs, the row is written under its version and the
history row appended, chained to the previous one. All of it happens in the
caller's transaction (``db.write_session``): it commits together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, bindparam, insert
from sqlmodel import Session, col, select
from transitions import Machine

from states import audit, rows, writes
from states.applications import rules
from states.applications.models import Application, ApplicationHistory
from states.applications.rules import GUARDS, AppContext, check_submission, decided_posts
from states.applications.table import (
    BY_NAME,
    COMMON_GUARDS,
    DEADLINE_CLOCK,
    IMPORT,
    SPEC,
    SUBMIT,
    TERMINAL,
    AppState,
    allowed_events,
)
from states.clock import add_months, not_in_future, now, show, utc
from states.db import is_sqlite, write_session
from states.deadlines import Step, due_step, reschedule, start_clock, step_of
from states.errors import Conflict, ConumError, NotFound, RuleViolation, illegal_event
from states.eventdata import normalise
from states.models import Outbox, Structure
from states.policy import Policy
from states.rules import actor_kind_may_fire, check, parse_actor

_HISTORY_INSERT = insert(ApplicationHistory.__table__)  # type: ignore[attr-defined]
_OUTBOX_INSERT = insert(Outbox.__table__)  # type: ignore[attr-defined]
MACHINE = Machine(model=None, send_event=True, **SPEC)
_APP_TABLE: Table = Application.__table__  # type: ignore[attr-defined]
_STRUCTURE_TABLE: Table = Structure.__table__  # type: ignore[attr-defined]
#: an application is written by its transitions; its structure never changes
_APPLICATION = rows.Versioned(_APP_TABLE, "application", ("structure_id",))
_LOAD = (
    select(*_APP_TABLE.c, *_STRUCTURE_TABLE.c)
    .join_from(_APP_TABLE, _STRUCTURE_TABLE, _STRUCTURE_TABLE.c.id == _APP_TABLE.c.structure_id)
    .where(_APP_TABLE.c.id == bindparam("app_id"))
)
_LOAD_LOCKED = _LOAD.with_for_update(of=_APP_TABLE)


class _Subject:
    """The plain object bound to the machine (a SQLModel row cannot be); guards are its methods."""

    state: str

    def __init__(self, ctx: AppContext) -> None:
        self.ctx, self.state = ctx, ctx.app.state


for _name, _guard in rules.GUARDS.items():
    setattr(_Subject, _name, lambda self, _event, guard=_guard: guard(self.ctx) is None)


def notify(ctx: AppContext, kind: str, recipients: tuple[str, ...], **extra: Any) -> None:
    """Queue a notification of ``kind`` about the application, in the transition's transaction."""
    app = ctx.app
    payload = {
        "application_id": app.id,
        "structure_id": app.structure_id,
        "structure_name": ctx.structure.name,
        "departement": app.departement,
        "state": app.state,
        "posts_requested": app.posts_requested,
        "posts_validated": app.posts_validated,
        "change_posts": app.change_posts,
        "opinion": app.opinion,
        "due_at": None,
        "at": show(ctx.at),
        "deadline_at": show(app.deadline_at),
        "escalation_level": app.escalation_level,
        **extra,
    }
    rows = [
        {"kind": kind, "recipient": r, "payload": payload, "created_at": ctx.at, "next_attempt_at": ctx.at}
        for r in recipients
    ]
    writes.write(ctx.session, _OUTBOX_INSERT, rows)


def _record(ctx: AppContext, source: str | None, dest: str) -> None:
    """Write the application (guarded by its version) and append its history row, chained."""
    app, session = ctx.app, ctx.session
    app.state, app.last_at = dest, ctx.at
    if dest in TERMINAL:
        app.due_at = app.deadline_at = None
    row = audit.chained_row(
        "application_id",
        app.id or 0,
        app.history_hash,
        event=ctx.event.name,
        from_state=source,
        to_state=dest,
        actor=ctx.actor,
        at=ctx.at,
        data=ctx.data,
        flow_run_id=ctx.flow_run_id,
    )
    app.history_hash = row["hash"]
    _APPLICATION.write(session, app)
    if session.dirty:  # a validation changes the structure's posts: the ORM writes it
        session.flush()
    writes.write(session, _HISTORY_INSERT, row)


def find_by_siret(session: Session, siret: str) -> Application | None:
    return session.exec(select(Application).where(Application.siret == siret)).first()


def submit(
    session: Session,
    data: Mapping[str, Any],
    *,
    actor: str = "admin",
    at: datetime | None = None,
    policy: Policy,
    flow_run_id: str | None = None,
) -> tuple[Application, bool]:
    """Open an application (and its structure, with no post yet); return it and whether it is new.

    A structure applies once: a SIRET already known returns the existing application, unchanged.
    """
    at = utc(at or now())
    actor_kind_may_fire(parse_actor(actor), SUBMIT.name, SUBMIT.who, False)
    not_in_future(at)
    values = check_submission(normalise(SUBMIT.name, SUBMIT.data, data), policy)
    existing = find_by_siret(session, values["siret"])
    if existing is not None:
        return existing, False
    structure = Structure(
        name=values["name"], kind=values["kind"], departement=values["departement"], posts=0, email=values.get("email")
    )
    session.add(structure)
    session.flush()
    app = Application(
        structure_id=structure.id or 0,
        siret=values["siret"],
        state=AppState.SUBMITTED.value,
        departement=structure.departement,
        posts_requested=values["posts"],
        duration_months=values["duration"],
        submitted_at=at,
        last_at=at,
    )
    start_clock(app, at, policy, DEADLINE_CLOCK)
    stored = {k: v for k, v in values.items() if k not in ("name", "email")}
    ctx = AppContext(session, app, structure, SUBMIT, actor, at, stored, policy, flow_run_id)
    session.add(app)
    session.flush()
    _record(ctx, None, app.state)
    notify(ctx, "application_submitted", ("prefet",))
    return app, True


def import_structure(
    session: Session, structure: Structure, *, actor: str, at: datetime | None = None, siret: str | None = None
) -> Application:
    """Record a structure validated outside Conum: its application opens at ``convention_signed``."""
    at = utc(at or now())
    app = Application(
        structure_id=structure.id or 0,
        siret=siret,
        state=AppState.CONVENTION_SIGNED.value,
        departement=structure.departement,
        posts_requested=structure.posts,
        posts_validated=structure.posts,
        submitted_at=at,
        last_at=at,
    )
    session.add(app)
    session.flush()
    ctx = AppContext(session, app, structure, IMPORT, actor, at, {"posts": structure.posts}, Policy())
    _record(ctx, None, app.state)
    return app


def load(session: Session, app_id: int, *, lock: bool = False) -> tuple[Application, Structure]:
    """Return an application with its structure, in one query (``states.rows``); ``lock`` takes the row lock."""
    found = rows.read_objects(session, _LOAD_LOCKED if lock else _LOAD, {"app_id": app_id}, (Application, Structure))
    if found is None:
        raise NotFound(f"application {app_id} does not exist: `conum application list` shows the applications")
    app, structure = found
    return app, structure


# ---------------------------------------------------------------- effects


def _validate(ctx: AppContext) -> None:
    app, structure = ctx.app, ctx.structure
    app.posts_validated = structure.posts = decided_posts(ctx)
    app.change_posts = None
    app.committee, app.committee_on = ctx.data["committee"], ctx.day()
    ctx.session.add(structure)
    notify(ctx, "application_validated", ("structure",))


def _refuse(ctx: AppContext) -> None:
    ctx.app.change_posts = None
    notify(ctx, "application_refused", ("structure",))


def _sign(ctx: AppContext) -> None:
    start = date.fromisoformat(ctx.data["start"])
    end = ctx.data.get("end")
    ctx.app.convention_start = start
    months = ctx.policy.subsidy.convention_months
    ctx.app.convention_end = date.fromisoformat(end) if end else add_months(start, months) - timedelta(days=1)


def _request(ctx: AppContext) -> None:
    ctx.app.change_posts = ctx.data["posts"]
    notify(ctx, "application_submitted", ("prefet",))


def _opinion(ctx: AppContext) -> None:
    ctx.app.opinion = ctx.data["opinion"]
    notify(ctx, "application_opinion", ("anct",))


def _step(ctx: AppContext) -> None:
    app = ctx.app
    app.escalation_level = max(app.escalation_level, ctx.data["level"])
    app.due_step = ctx.data["step"] + 1
    reschedule(app, ctx.policy, DEADLINE_CLOCK)
    opinion = DEADLINE_CLOCK[AppState(app.state)] == "opinion"
    if ctx.event.name == "remind":
        notify(ctx, "application_reminder", ("prefet",) if opinion else ("anct",), due_at=ctx.data["due_at"])
    else:
        notify(ctx, "application_escalation", ("anct",), due_at=ctx.data["due_at"])


EFFECTS: dict[str, Callable[[AppContext], None]] = {
    "validate": _validate,
    "refuse": _refuse,
    "sign_convention": _sign,
    "request_change": _request,
    "give_opinion": _opinion,
    "remind": _step,
    "escalate": _step,
}


def fire(
    session: Session,
    app_id: int,
    event: str,
    *,
    actor: str = "admin",
    at: datetime | None = None,
    data: Mapping[str, Any] | None = None,
    policy: Policy,
    flow_run_id: str | None = None,
    expected_version: int | None = None,
    internal: bool = False,
) -> Application:
    """Fire ``event`` on an application for ``actor`` at instant ``at``; return the application after it."""
    at = utc(at or now())
    actor = parse_actor(actor)
    app, structure = load(session, app_id, lock=True)
    state = AppState(app.state)
    ev = BY_NAME.get(event)
    if ev is None or (ev.internal and not internal) or state not in ev.sources:
        known, swept = ev is not None, ev is not None and ev.internal
        raise illegal_event(f"application {app_id}", state, event, known, swept, allowed_events(state), "the sweep")
    if expected_version is not None and app.version != expected_version:
        raise Conflict(f"application {app_id} is at version {app.version}, not {expected_version}: read it again")
    ctx = AppContext(session, app, structure, ev, actor, at, {}, policy, flow_run_id, internal)
    check(ctx, COMMON_GUARDS, GUARDS)
    ctx.data = dict(data or {}) if internal else normalise(ev.name, ev.data, data or {})
    subject = _Subject(ctx)
    if not MACHINE.events[ev.name].trigger(subject):
        raise RuleViolation(f"'{event}' was refused by a rule of the programme", rule="guard")
    dest = subject.state
    if dest != state.value:
        if AppState(dest) in DEADLINE_CLOCK:
            app.state = dest
            start_clock(app, at, policy, DEADLINE_CLOCK)
        else:
            app.clock_start, app.due_step, app.escalation_level = None, 0, 0
            app.state = dest
            reschedule(app, policy, DEADLINE_CLOCK)
    app.state = dest
    effect = EFFECTS.get(ev.name)
    if effect:
        effect(ctx)
    _record(ctx, state.value, dest)
    return app


def apply_due_step(session: Session, app: Application, at: datetime, policy: Policy) -> Step | None:
    """Apply the furthest deadline step due on the application at ``at``; return it, or None."""
    index = due_step(app, policy, at, DEADLINE_CLOCK)
    if index is None:
        return None
    step, due = step_of(app, policy, index, at, DEADLINE_CLOCK)
    data = {"step": index, "level": step.level, "due_at": show(due)}
    fire(
        session,
        app.id or 0,
        step.action,
        actor="system",
        at=max(at, utc(app.last_at)),
        data=data,
        policy=policy,
        internal=True,
    )
    return Step(app.id or 0, step.action, step.level, due)


def recruiting(session: Session, structure_id: int) -> bool | None:
    """Tell whether a structure's convention is signed (None: no application recorded, an older structure)."""
    from states.applications.table import RECRUITING

    app = session.exec(select(Application.state).where(Application.structure_id == structure_id)).first()
    return None if app is None else AppState(app) in RECRUITING


__all__ = ["apply_due_step", "fire", "import_structure", "load", "recruiting", "submit", "sweep"]


def sweep(engine: Engine, at: datetime, policy: Policy, chunk: int = 500) -> tuple[list[Step], dict[int, str]]:
    """Apply every reminder and escalation due on applications at ``at``, exactly once; return them and failures.

    As the cases' sweep: one write transaction per chunk, rows locked with ``SKIP LOCKED`` on PostgreSQL (SQLite
    serialises writers), a step moves ``due_at`` past ``at`` in the transaction that acts on it, and one
    application that fails is rolled back alone, reported and skipped.
    """
    steps: list[Step] = []
    failures: dict[int, str] = {}
    while True:
        with write_session(engine) as session:
            q = select(Application).where(col(Application.due_at) <= at)
            if failures:
                q = q.where(col(Application.id).not_in(list(failures)))
            q = q.order_by(col(Application.due_at), col(Application.id)).limit(chunk)
            if not is_sqlite(engine):
                q = q.with_for_update(skip_locked=True)
            rows = session.exec(q).all()
            for app in rows:
                try:
                    with session.begin_nested():
                        step = apply_due_step(session, app, at, policy)
                except ConumError as exc:
                    failures[app.id or 0] = str(exc)
                    continue
                if step is None:  # nothing due after all: never selected again
                    failures[app.id or 0] = "nothing due"
                else:
                    steps.append(step)
        if len(rows) < chunk:
            return steps, {k: v for k, v in failures.items() if v != "nothing due"}
