"""Data protection: anonymise the candidates the programme did not retain.

A candidate whose cases all ended without a contract keeps their personal data
``policy.retention_months`` after the last one ended (``retention_consent_months``
with their consent), then their name and e-mail are replaced and the free-text
reasons in their cases' history are blanked. The history keeps its rows, its
shape and its figures.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, case, func
from sqlmodel import col, select

from states.clock import shift, utc
from states.db import write_session
from states.lifecycle import TERMINAL
from states.models import Candidate, Case, History
from states.policy import Policy

ANONYMOUS = "[anonymisé]"


def anonymise(engine: Engine, at: datetime, policy: Policy) -> int:
    """Anonymise every non-retained candidate past their retention period; return how many."""
    at = utc(at)
    done = 0
    with write_session(engine) as session:
        rows = session.exec(
            select(Candidate, func.max(Case.last_at), func.count(col(Case.id)))
            .join(Case, col(Case.candidate_id) == col(Candidate.id))
            .where(col(Candidate.anonymised_at).is_(None))
            .group_by(col(Candidate.id))
            .having(
                func.sum(case((col(Case.state).in_([s.value for s in TERMINAL]), 0), else_=1)) == 0,
                func.sum(case((col(Case.contract_start).is_not(None), 1), else_=0)) == 0,
            )
        ).all()
        for candidate, ended, _count in rows:
            months = policy.retention_consent_months if candidate.consent else policy.retention_months
            if shift(utc(ended), months=months) > at:
                continue
            candidate.name = f"Candidat anonymisé {candidate.id}"
            candidate.email = f"anonyme-{candidate.id}@invalid"
            candidate.anonymised_at = at
            session.add(candidate)
            history = session.exec(
                select(History)
                .join(Case, col(Case.id) == col(History.case_id))
                .where(Case.candidate_id == candidate.id)
            ).all()
            for row in history:
                if row.data.get("reason"):
                    row.data = {**row.data, "reason": ANONYMOUS}
                    session.add(row)
            done += 1
    return done
