"""The figures of the application phase: the funnel from submission to convention, and the envelope month by month.

Read from the applications' rows and histories, as ``states.simulation.figures`` reads the cases'. The
posts of a month are those the committee validated on a first decision that month (the simulation asks
for no change of posts afterwards); what is left is the envelope minus every post validated so far.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from states.applications.models import Application, ApplicationHistory
from states.applications.table import HOLDING_POSTS, AppState
from states.clock import paris_day
from states.simulation.figures import month_label, months_between

#: The funnel's steps: (key, French label, the history's event that reaches it).
FUNNEL_STEPS = (
    ("submitted", "Candidatures déposées", "submit"),
    ("opinion", "Avis du préfet rendus", "give_opinion"),
    ("validated", "Validées en comité de sélection", "validate"),
    ("refused", "Refusées en comité de sélection", "refuse"),
    ("withdrawn", "Retirées par la structure", "withdraw"),
    ("convention", "Conventions signées", "sign_convention"),
)
#: The states in which an application still waits at the end, and how the report names them.
WAITING = (AppState.SUBMITTED, AppState.PREFET_REVIEWED, AppState.VALIDATED)


def _month(value: Any) -> str:
    day = paris_day(value)
    return f"{day.year:04d}-{day.month:02d}"


def application_figures(s: Session, envelope: int) -> dict[str, Any]:
    """Return the funnel and the envelope month by month, from the first application to the last decision."""
    apps = s.exec(
        select(Application.id, Application.state, Application.posts_requested, Application.posts_validated).where(
            col(Application.siret).is_not(None)  # applications made in Conum, not structures imported
        )
    ).all()
    if not apps:
        return {}
    requested = {a[0]: int(a[2]) for a in apps}
    validated = {a[0]: int(a[3]) for a in apps}
    rows = s.execute(
        sql_select(
            col(ApplicationHistory.application_id),
            col(ApplicationHistory.event),
            col(ApplicationHistory.from_state),
            col(ApplicationHistory.at),
            col(ApplicationHistory.data),
        )
        .join(Application, col(Application.id) == col(ApplicationHistory.application_id))
        .where(col(Application.siret).is_not(None))
    ).all()
    reached: dict[str, set[int]] = {event: set() for _, _, event in FUNNEL_STEPS}
    opinions: Counter[str] = Counter()
    requested_by: Counter[str] = Counter()
    validated_by: Counter[str] = Counter()
    signed_by: Counter[str] = Counter()
    deadline: Counter[str] = Counter()
    for app_id, event, source, at, data in rows:
        if event in reached and source in (None, "submitted", "prefet_reviewed", "validated"):
            reached[event].add(app_id)
        if event == "submit":
            requested_by[_month(at)] += requested[app_id]
        elif event == "give_opinion" and source == "submitted":
            opinions[(data or {}).get("opinion", "?")] += 1
        elif event == "validate" and source == AppState.PREFET_REVIEWED.value:
            validated_by[_month(at)] += int((data or {}).get("posts", 0))
        elif event == "sign_convention":
            signed_by[_month(at)] += validated[app_id]
        elif event in ("remind", "escalate"):
            deadline[event] += 1
    funnel = []
    for key, label, event in FUNNEL_STEPS:
        ids = reached[event]
        posts = sum(requested[i] for i in ids) if key in ("submitted", "opinion", "withdrawn", "refused") else None
        if key in ("validated", "convention"):
            posts = sum(validated[i] for i in ids)
        funnel.append({"key": key, "label": label, "applications": len(ids), "posts": posts})
    reduced = sum(1 for i in reached["validate"] if validated[i] < requested[i])
    waiting = Counter(a[1] for a in apps if AppState(a[1]) in WAITING)
    by_month = []
    total = 0
    seen = sorted({*requested_by, *validated_by, *signed_by})
    for month in months_between(seen[0], seen[-1]):
        total += validated_by[month]
        by_month.append(
            {
                "month": month,
                "label": month_label(month),
                "requested": requested_by[month],
                "validated": validated_by[month],
                "validated_total": total,
                "left": envelope - total,
                "convention_posts": signed_by[month],
            }
        )
    held = s.exec(
        select(func.coalesce(func.sum(Application.posts_validated), 0)).where(
            col(Application.state).in_([state.value for state in HOLDING_POSTS])
        )
    ).one()
    return {
        "envelope": envelope,
        "funnel": funnel,
        "favourable": opinions["favourable"],
        "unfavourable": opinions["unfavourable"],
        "reduced": reduced,
        "waiting": {state: int(n) for state, n in sorted(waiting.items())},
        "reminded": deadline["remind"],
        "escalated": deadline["escalate"],
        "posts_held": int(held),
        "by_month": by_month,
    }
