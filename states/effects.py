"""What each event does to a case, besides changing its state: the effects, in the transition's transaction.

An effect sets the case's facts (selection, contract, training, money), moves
its deadline clock, schedules, pays or cancels tranches, and queues the
notifications and payment orders in the outbox. Outbox and tranche rows are
only ever inserted here, as plain Core inserts; the service records the state
and the history row after the effect.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from states import money, writes
from states.clock import paris_day, show, start_of_day, utc
from states.deadlines import reschedule, start_clock
from states.lifecycle import LABELS, PRE_CONTRACT, State
from states.models import Case, Outbox, Tranche
from states.notifications import notices
from states.rules import Context

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
_TRANCHE_TABLE: Table = Tranche.__table__  # type: ignore[attr-defined]
_OUTBOX_INSERT = insert(_OUTBOX_TABLE)
_TRANCHE_INSERT = insert(_TRANCHE_TABLE)


def announce(ctx: Context, extra: dict[str, Any] | None = None) -> None:
    """Queue what the notification matrix sends for the event of ``ctx``, in the transition's transaction.

    One outbox row per (kind, recipient) whose condition holds (``states.notifications``), each with the
    case as it is now (the payload) plus ``extra``; nothing when the matrix sends nothing.
    """
    sent = notices(ctx)
    if not sent:
        return
    payload = _payload(ctx, **(extra or {}))
    rows = [
        {
            "case_id": ctx.case.id,
            "kind": kind,
            "recipient": recipient,
            "payload": payload,
            "created_at": ctx.at,
            "next_attempt_at": ctx.at,
        }
        for kind, recipients in sent
        for recipient in recipients
    ]
    writes.write(ctx.session, _OUTBOX_INSERT, rows)


# ---------------------------------------------------------------- effects

# Built once: building a SQLAlchemy statement costs more than running it from the compiled cache.
_TRANCHES = select(Tranche).where(col(Tranche.case_id) == bindparam("case_id")).order_by(col(Tranche.number))
_OTHER_OPEN_CASES = select(Case).where(
    col(Case.candidate_id) == bindparam("candidate_id"),
    col(Case.id) != bindparam("case_id"),
    col(Case.state).in_([s.value for s in PRE_CONTRACT]),
)
# a Core statement (no ORM synchronisation): see _on_pay
_PAY_TRANCHE = (
    update(_TRANCHE_TABLE)
    .where(_TRANCHE_TABLE.c.id == bindparam("tranche_id"), _TRANCHE_TABLE.c.status == "scheduled")
    .values(status="paid", paid_at=bindparam("paid_at"))
)


def _write_tranche(session: Session, tranche: Tranche, values: dict[str, Any]) -> None:
    """Write a scheduled tranche's new values with Core (nothing left for the session to flush later)."""
    session.execute(update(_TRANCHE_TABLE).where(_TRANCHE_TABLE.c.id == tranche.id).values(**values))
    for key, value in values.items():
        set_committed_value(tranche, key, value)


def tranches_of(session: Session, case_id: int) -> list[Tranche]:
    """Return the tranches of a case, in order."""
    return list(session.exec(_TRANCHES, params={"case_id": case_id}))


def _on_select(ctx: Context) -> None:
    ctx.case.selected_at = ctx.at
    start_clock(ctx.case, ctx.at, ctx.policy)


def _with_reason(ctx: Context) -> dict[str, Any]:
    """The reason a person typed (decline, withdraw, cancel), for the mails that show it."""
    return {"reason": ctx.data.get("reason")}


def _on_contact(ctx: Context) -> None:
    ctx.case.training_org_id = ctx.data["org"]


def _on_sign(ctx: Context) -> dict[str, Any]:
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
    start_clock(case, start_of_day(start), ctx.policy)
    # the candidate leaves the pool: their other open cases close (the structures are told: signed_elsewhere)
    others = ctx.session.exec(_OTHER_OPEN_CASES, params={"candidate_id": case.candidate_id, "case_id": case.id}).all()
    for other in others:
        if ctx.cascade is None:
            raise RuntimeError("signing needs the service's cascade to close the candidate's other cases")
        ctx.cascade(
            other, "withdraw", max(ctx.at, utc(other.last_at)), {"reason": f"contrat signé dans le dossier {case.id}"}
        )
    return {
        "contract_type": d["type"],
        "contract_start": d["start"],
        "contract_end": d.get("end"),
        "subsidy_cents": g.subsidy_cents,
        "funded_months": g.funded_months,
        "tranches": [{"number": i + 1, "amount_cents": a} for i, a in enumerate(g.amounts)],
    }


def _on_start_training(ctx: Context) -> dict[str, Any]:
    day = ctx.day()
    ctx.case.training_start = day
    start_clock(ctx.case, start_of_day(day) if ctx.data.get("date") else ctx.at, ctx.policy)
    return {"training_start": day.isoformat(), "training_months": ctx.policy.training_months}


def _on_complete_training(ctx: Context) -> dict[str, Any]:
    day = ctx.day()
    ctx.case.in_post_on = day
    first = None
    for t in tranches_of(ctx.session, ctx.case.id or 0):
        if t.number == 1 and t.status == "scheduled":
            _write_tranche(ctx.session, t, {"due_on": day})
            first = t.amount_cents
    return {"in_post_on": day.isoformat(), "first_tranche_cents": first, "subsidy_cents": ctx.case.subsidy_cents}


def _close_money(ctx: Context, ended: date) -> dict[str, Any]:
    """Cancel unpaid tranches and record what was paid above the subsidy earned pro rata; return the figures."""
    case = ctx.case
    case.ended_on = ended
    figures: dict[str, Any] = {"ended_on": ended.isoformat(), **_with_reason(ctx)}
    if case.subsidy_cents is None or case.contract_start is None:
        return figures
    paid = 0
    for t in tranches_of(ctx.session, case.id or 0):
        if t.status == "scheduled":
            _write_tranche(ctx.session, t, {"status": "cancelled"})
        elif t.status == "paid":
            paid += t.amount_cents
    earned = money.earned(ctx.policy, case.subsidy_cents, case.funded_months or 0, case.contract_start, ended)
    case.recovery_cents = max(0, paid - earned)
    return {**figures, "paid_cents": paid, "earned_cents": earned, "recovery_cents": case.recovery_cents}


def _on_break(ctx: Context) -> dict[str, Any]:
    return _close_money(ctx, ctx.day())


def _on_cancel(ctx: Context) -> dict[str, Any]:
    if ctx.case.contract_start is not None:
        return _close_money(ctx, max(ctx.case.contract_start, paris_day(ctx.at)))
    return _with_reason(ctx)


def _on_deadline_step(ctx: Context) -> dict[str, Any]:
    """A reminder or an escalation: raise the level, mark the step done (the matrix says who is told)."""
    case, level = ctx.case, int(ctx.data["level"])
    case.escalation_level = max(case.escalation_level, level)
    case.due_step = int(ctx.data["step"]) + 1
    reschedule(case, ctx.policy)
    return {"due_at": ctx.data.get("due_at")}


def _on_pay(ctx: Context) -> dict[str, Any]:
    tranche_id = int(ctx.data["tranche_id"])
    # The WHERE on status makes a second payment of the same tranche impossible, whatever the caller did
    # (a stale object in memory, a second process): the database decides, not the session. The statement
    # is plain Core, so the session neither flushes nor fetches for it; the tranche object of this session,
    # if loaded, gets the new values as committed ones (what synchronize_session="fetch" did, without its
    # extra SELECT and without making the object dirty, which would write the row a second time).
    writes.write(
        ctx.session,
        _PAY_TRANCHE,
        {"tranche_id": tranche_id, "paid_at": ctx.at},
        conflict=f"tranche {ctx.data['number']} of case {ctx.case.id} is no longer scheduled: it was paid or "
        "cancelled meanwhile",
    )
    tranche = ctx.session.identity_map.get(ctx.session.identity_key(Tranche, tranche_id))
    if tranche is not None:
        set_committed_value(tranche, "status", "paid")
        set_committed_value(tranche, "paid_at", ctx.at)
    return {  # the notice and the payment order read the same payload
        "tranche_number": ctx.data["number"],
        "amount_cents": ctx.data["amount_cents"],
        "subsidy_cents": ctx.case.subsidy_cents,
        "structure_kind": ctx.structure.kind,
        "tranche_id": tranche_id,
    }


#: What each event does besides its state; the extra facts it returns go into its notifications' payload.
EFFECTS: dict[str, Callable[[Context], dict[str, Any] | None]] = {
    "select": _on_select,
    "decline": _with_reason,
    "withdraw": _with_reason,
    "contact_training_org": _on_contact,
    "sign_contract": _on_sign,
    "start_training": _on_start_training,
    "complete_training": _on_complete_training,
    "break_contract": _on_break,
    "cancel": _on_cancel,
    "remind": _on_deadline_step,
    "escalate": _on_deadline_step,
    "pay_tranche": _on_pay,
    "pay_final_tranche": _on_pay,
}


def apply(ctx: Context) -> None:
    """Run the event's effect, then queue its notifications (the matrix), all in the transition's transaction."""
    effect = EFFECTS.get(ctx.event.name)
    extra = effect(ctx) if effect else None
    announce(ctx, extra)
