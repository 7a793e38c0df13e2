"""Read models: a case as the CLI, the flows and the reports show it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from states.clock import show, utc
from states.lifecycle import LABELS, OPEN, State
from states.models import Case, History, HistoryNote, Structure, Tranche


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


def history_entry(h: Any, notes: dict[str, str] | None = None) -> dict[str, Any]:
    """Return one history row (a case's, an application's) as views show it, with the notes typed with it."""
    return {
        "event": h.event,
        "from": h.from_state,
        "to": h.to_state,
        "actor": h.actor,
        "at": show(h.at),
        "data": {**h.data, **(notes or {})},
        **({"flow_run_id": h.flow_run_id} if h.flow_run_id else {}),
        **({"created_by": h.created_by} if getattr(h, "created_by", None) else {}),
    }


def case_view(session: Session, case: Case) -> dict[str, Any]:
    """Return the whole case: state, deadlines, money, tranches and history."""
    tranches = session.exec(select(Tranche).where(Tranche.case_id == case.id).order_by(col(Tranche.number))).all()
    history = session.exec(select(History).where(History.case_id == case.id).order_by(col(History.id))).all()
    notes: dict[int, dict[str, str]] = {}  # the free text typed with each step, kept apart from the history rows
    for note in session.exec(select(HistoryNote).where(HistoryNote.case_id == case.id)):
        notes.setdefault(note.history_id, {})[note.key] = note.text
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
            "history": [history_entry(h, notes.get(h.id or 0, {})) for h in history],
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


#: The main path of a case, in order; the side paths leave it.
MAIN_PATH: tuple[State, ...] = (
    State.CANDIDATE_PRESENTED,
    State.SELECTED,
    State.TRAINING_ORG_CONTACTED,
    State.CONTRACT_SIGNED,
    State.IN_TRAINING,
    State.IN_POST,
    State.TRANCHES_PAID,
)


def lifecycle_path(state: str, visited: list[str]) -> list[dict[str, Any]]:
    """Return the steps of a case's path: the main path, and the side state where it left it.

    Each step has its state, French label and status: ``done`` (passed), ``current`` or ``todo``;
    a case closed on a side path shows the main states it passed, then its side state as current.
    """
    seen = set(visited)
    steps = []
    for s in MAIN_PATH:
        status = "current" if s.value == state else "done" if s.value in seen else "todo"
        steps.append({"state": s.value, "label": LABELS[s], "status": status})
    if state not in {s.value for s in MAIN_PATH}:
        steps = [step for step in steps if step["status"] == "done"]
        steps.append({"state": state, "label": LABELS[State(state)], "status": "current"})
    return steps


def case_page(session: Session, case_id: int, view: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return everything a case's page shows: the case, its parties by name, its path and history.

    ``view`` is the case's ``case_view`` when the caller has just read it (in a transaction that has
    committed since): it is not read again.
    """
    from states.models import TrainingOrg
    from states.service import load_case

    case, structure, candidate = load_case(session, case_id)
    view = case_view(session, case) if view is None else dict(view)
    org = session.get(TrainingOrg, case.training_org_id) if case.training_org_id else None
    view.update(
        {
            "structure": {
                "id": structure.id,
                "name": structure.name,
                "departement": structure.departement,
                "kind": structure.kind,
                "posts": structure.posts,
            },
            "candidate": {
                "id": candidate.id,
                "name": candidate.name,
                "anonymised": candidate.anonymised_at is not None,
            },
            "training_org": None if org is None else {"id": org.id, "name": org.name},
            "path": lifecycle_path(case.state, [h["to"] for h in view["history"]]),
            "open": State(case.state) in OPEN,
        }
    )
    return view
