"""Read models: a case as the CLI, the flows and the reports show it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from states.clock import show, utc
from states.lifecycle import LABELS, OPEN, State
from states.models import Case, History, Structure, Tranche


def case_summary(case: Case) -> dict[str, Any]:
    return {
        "id": case.id,
        "state": case.state,
        "structure_id": case.structure_id,
        "candidate_id": case.candidate_id,
        "escalation_level": case.escalation_level,
        "deadline_at": show(case.deadline_at),
        "due_at": show(case.due_at),
    }


def case_view(session: Session, case: Case) -> dict[str, Any]:
    """Return the whole case: state, deadlines, money, tranches and history."""
    tranches = session.exec(select(Tranche).where(Tranche.case_id == case.id).order_by(col(Tranche.number))).all()
    history = session.exec(select(History).where(History.case_id == case.id).order_by(col(History.id))).all()
    view = case_summary(case)
    view.update(
        {
            "label": LABELS[State(case.state)],
            "version": case.version,
            "subsidy_cents": case.subsidy_cents,
            "recovery_cents": case.recovery_cents,
            "contract": None
            if case.contract_type is None
            else {
                "type": case.contract_type,
                "start": case.contract_start.isoformat() if case.contract_start else None,
                "end": case.contract_end.isoformat() if case.contract_end else None,
                "salary_cents": case.salary_cents,
                "training_org_id": case.training_org_id,
                "funded_months": case.funded_months,
            },
            "tranches": [
                {
                    "number": t.number,
                    "amount_cents": t.amount_cents,
                    "due_on": t.due_on.isoformat() if t.due_on else None,
                    "status": t.status,
                    "paid_at": show(t.paid_at),
                }
                for t in tranches
            ],
            "history": [
                {
                    "event": h.event,
                    "from": h.from_state,
                    "to": h.to_state,
                    "actor": h.actor,
                    "at": show(h.at),
                    "data": h.data,
                    **({"flow_run_id": h.flow_run_id} if h.flow_run_id else {}),
                }
                for h in history
            ],
        }
    )
    return view


def list_cases(
    session: Session,
    *,
    at: datetime,
    state: str | None = None,
    departement: str | None = None,
    overdue: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    q = select(Case)
    if state:
        q = q.where(Case.state == state)
    if departement:
        q = q.join(Structure, col(Structure.id) == col(Case.structure_id)).where(Structure.departement == departement)
    if overdue:
        q = q.where(col(Case.state).in_([s.value for s in OPEN]), col(Case.deadline_at) < utc(at))
    q = q.order_by(col(Case.id))
    if limit:
        q = q.limit(limit)
    return [case_summary(c) for c in session.exec(q)]


def get_case(engine: Engine, case_id: int) -> dict[str, Any]:
    from states.service import load_case

    with Session(engine) as session:
        return case_view(session, load_case(session, case_id)[0])
