"""The posts of the programme: requested, validated and under contract, by département, région and nationally.

The dashboard and the simulation's report read these tables; their headers are
French, as the ANCT reads them. The national row and each région with an
envelope in the policy show the envelope and what is left of it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from states.applications.models import Application
from states.applications.table import HOLDING_POSTS
from states.geo import name_of, region_of
from states.lifecycle import ACTIVE_CONTRACT
from states.models import Case, Structure
from states.policy import Policy

REQUESTED, VALIDATED, UNDER_CONTRACT = "postes demandés", "postes validés", "postes sous contrat"
ENVELOPE, LEFT = "enveloppe", "reste dans l'enveloppe"
NATIONAL = "national"


@dataclass
class PostsTables:
    """The three tables of posts: by département, by région, and the national row."""

    by_departement: list[dict[str, Any]] = field(default_factory=list)
    by_region: list[dict[str, Any]] = field(default_factory=list)
    national: list[dict[str, Any]] = field(default_factory=list)


def posts_by_departement(session: Session) -> dict[str, Counter[str]]:
    """Return, for each département, the posts requested, validated (held) and under an active contract."""
    out: dict[str, Counter[str]] = defaultdict(Counter)
    held = [s.value for s in HOLDING_POSTS]
    q = select(
        Application.departement,
        func.sum(Application.posts_requested),
        func.sum(func.coalesce(col(Application.posts_validated), 0)).filter(col(Application.state).in_(held)),
    ).group_by(col(Application.departement))
    for departement, requested, validated in session.exec(q).all():
        out[departement][REQUESTED] += int(requested or 0)
        out[departement][VALIDATED] += int(validated or 0)
    contracts = (
        select(Structure.departement, func.count(col(Case.id)))
        .join(Structure, col(Structure.id) == col(Case.structure_id))
        .where(col(Case.state).in_([s.value for s in ACTIVE_CONTRACT]))
        .group_by(col(Structure.departement))
    )
    for departement, n in session.exec(contracts).all():
        out[departement][UNDER_CONTRACT] += int(n)
    return dict(out)


def _columns(counter: Counter[str], envelope: int | None = None, enveloped: bool = False) -> dict[str, Any]:
    """The posts of a place; with ``enveloped``, its envelope and what is left (empty where it has none)."""
    row: dict[str, Any] = {k: counter.get(k, 0) for k in (REQUESTED, VALIDATED, UNDER_CONTRACT)}
    if enveloped:
        row[ENVELOPE] = envelope
        row[LEFT] = None if envelope is None else envelope - counter.get(VALIDATED, 0)
    return row


def posts_tables(session: Session, policy: Policy) -> PostsTables:
    """Return the posts by département, by région (with its envelope where set) and nationally (with 4,000)."""
    counts = posts_by_departement(session)
    regions: dict[str, Counter[str]] = defaultdict(Counter)
    total: Counter[str] = Counter()
    for code, counter in counts.items():
        regions[region_of(code)].update(counter)
        total.update(counter)
    return PostsTables(
        by_departement=[
            {"département": code, "nom": name_of(code), "région": region_of(code), **_columns(c)}
            for code, c in sorted(counts.items())
        ],
        by_region=[
            {"région": region, **_columns(c, policy.regional_posts.get(region), True)}
            for region, c in sorted(regions.items())
        ],
        national=[{"périmètre": NATIONAL, **_columns(total, policy.national_posts, True)}],
    )
