"""Data protection: anonymise the candidates the programme did not retain, and give a person their data.

A candidate whose cases all ended without a contract keeps their personal data
``policy.retention_months`` after the last one ended (``retention_consent_months``
with their consent). Then everything that holds it is scrubbed: their name and
e-mail, the free text typed about them (``history_note``), the outbox rows of
their cases (the name and reasons in the payloads) and the copies of those mails
kept on disk. The history rows hold no personal data: they are never rewritten,
so each case keeps its shape, its money and its hash chain. An anonymised
candidate cannot be presented again.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, case, func
from sqlmodel import Session, col, select

from states.clock import not_in_future, shift, show, utc
from states.db import read_session, write_session
from states.errors import NotFound
from states.lifecycle import TERMINAL
from states.models import Candidate, Case, History, HistoryNote, Outbox
from states.policy import Policy

ANONYMOUS = "[anonymisé]"
#: The keys of an outbox payload that carry a person's data.
_PERSONAL_KEYS = ("candidate_name", "reason")


def anonymise(engine: Engine, at: datetime, policy: Policy, mail_dir: str | Path | None = None) -> int:
    """Anonymise every non-retained candidate past their retention period; return how many.

    ``mail_dir`` is where the ``.eml`` copies of sent mail are kept: those of the candidate's cases go.
    """
    at = utc(not_in_future(at, "the anonymisation"))
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
            _scrub(session, candidate, at, mail_dir)
            done += 1
    return done


def _scrub(session: Session, candidate: Candidate, at: datetime, mail_dir: str | Path | None) -> None:
    candidate.name = f"Candidat anonymisé {candidate.id}"
    candidate.email = f"anonyme-{candidate.id}@invalid"
    candidate.anonymised_at = at
    session.add(candidate)
    case_ids = list(session.exec(select(Case.id).where(Case.candidate_id == candidate.id)))
    for note in session.exec(select(HistoryNote).where(col(HistoryNote.case_id).in_(case_ids))):
        note.text = ANONYMOUS
        session.add(note)
    for row in session.exec(select(Outbox).where(col(Outbox.case_id).in_(case_ids))):
        if any(row.payload.get(k) for k in _PERSONAL_KEYS):
            row.payload = {k: (ANONYMOUS if k in _PERSONAL_KEYS and v else v) for k, v in row.payload.items()}
            session.add(row)
        if mail_dir is not None:
            for copy in Path(mail_dir).glob(f"outbox-{row.id:08d}-*.eml"):
                copy.unlink(missing_ok=True)


def export(engine: Engine, candidate_id: int) -> dict[str, Any]:
    """Return everything the programme holds about a candidate (their right of access)."""
    with read_session(engine) as s:
        candidate = s.get(Candidate, candidate_id)
        if candidate is None:
            raise NotFound(
                f"candidate {candidate_id} does not exist: `conum list` shows the cases and their candidates"
            )
        cases = list(s.exec(select(Case).where(Case.candidate_id == candidate_id).order_by(col(Case.id))))
        ids = [c.id for c in cases]
        history = list(s.exec(select(History).where(col(History.case_id).in_(ids)).order_by(col(History.id))))
        notes: dict[int, dict[str, str]] = {}
        for note in s.exec(select(HistoryNote).where(col(HistoryNote.case_id).in_(ids))):
            notes.setdefault(note.history_id, {})[note.key] = note.text
        mail = list(
            s.exec(
                select(Outbox)
                .where(col(Outbox.case_id).in_(ids), Outbox.recipient == "candidate")
                .order_by(col(Outbox.id))
            )
        )
    return {
        "candidate": {
            "id": candidate.id,
            "name": candidate.name,
            "email": candidate.email,
            "departement": candidate.departement,
            "consent": candidate.consent,
            "anonymised_at": show(candidate.anonymised_at),
        },
        "cases": [
            {
                "id": c.id,
                "structure_id": c.structure_id,
                "state": c.state,
                "presented_at": show(c.presented_at),
                "contract_type": c.contract_type,
                "contract_start": c.contract_start.isoformat() if c.contract_start else None,
                "contract_end": c.contract_end.isoformat() if c.contract_end else None,
                "salary_cents": c.salary_cents,
                "history": [
                    {
                        "event": h.event,
                        "from": h.from_state,
                        "to": h.to_state,
                        "actor": h.actor,
                        "at": show(h.at),
                        "data": {**h.data, **notes.get(h.id or 0, {})},
                    }
                    for h in history
                    if h.case_id == c.id
                ],
            }
            for c in cases
        ],
        "notifications": [
            {
                "kind": m.kind,
                "status": m.status,
                "created_at": show(m.created_at),
                "payload": json.loads(json.dumps(m.payload)),
            }
            for m in mail
        ],
    }
