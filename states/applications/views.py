"""Read models: an application as the CLI and the flows show it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from states.applications.models import Application, ApplicationHistory
from states.applications.table import LABELS, AppState
from states.audit import flag_broken, verify
from states.clock import show
from states.models import Structure
from states.views import history_entry

#: The chained history of applications, for ``states.audit.verify``.
CHAIN = ("application_history", "application", "application_id")


def _day(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def application_summary(app: Application, structure: Structure) -> dict[str, Any]:
    return {
        "id": app.id,
        "state": app.state,
        "structure_id": app.structure_id,
        "name": structure.name,
        "departement": app.departement,
        "posts_requested": app.posts_requested,
        "posts_validated": app.posts_validated,
        "escalation_level": app.escalation_level,
        "deadline_at": show(app.deadline_at),
        "due_at": show(app.due_at),
    }


def application_view(session: Session, app: Application, structure: Structure) -> dict[str, Any]:
    """Return the whole application: its state, posts, committee, convention and history."""
    q = select(ApplicationHistory).where(ApplicationHistory.application_id == app.id)
    history = session.exec(q.order_by(col(ApplicationHistory.id))).all()
    view = application_summary(app, structure)
    view.update(
        {
            "label": LABELS[AppState(app.state)],
            "version": app.version,
            "siret": app.siret,
            "kind": structure.kind,
            "duration_months": app.duration_months,
            "change_posts": app.change_posts,
            "opinion": app.opinion,
            "committee": app.committee,
            "committee_on": _day(app.committee_on),
            "convention_start": _day(app.convention_start),
            "convention_end": _day(app.convention_end),
            "history": [history_entry(h) for h in history],
        }
    )
    return view


def get_application(engine: Engine, app_id: int) -> dict[str, Any]:
    """Return the view of an application, with whether its history chain is intact."""
    from states.applications.service import load

    with Session(engine) as session:
        view = application_view(session, *load(session, app_id))
    return flag_broken(view, verify(engine, app_id, CHAIN))


def list_applications(
    session: Session, *, state: str | None = None, departement: str | None = None
) -> list[dict[str, Any]]:
    q = select(Application, Structure).join(Structure, col(Structure.id) == col(Application.structure_id))
    if state:
        q = q.where(Application.state == state)
    if departement:
        q = q.where(Application.departement == departement)
    return [application_summary(a, s) for a, s in session.exec(q.order_by(col(Application.id)))]
