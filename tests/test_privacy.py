"""Data protection: candidates not retained are anonymised after their retention period."""

from __future__ import annotations

from sqlmodel import Session, select

from states.clock import parse_instant
from states.models import Candidate, History
from states.privacy import ANONYMOUS, anonymise


def _candidate(engine, cid: int) -> Candidate:
    with Session(engine) as s:
        row = s.get(Candidate, cid)
        assert row is not None
        return row


def test_declined_candidate_is_anonymised_three_months_after_the_end(world, engine, policy) -> None:
    structure, candidate = world.structure(), world.candidate()
    case = world.present(structure, candidate, at="2026-03-01T10:00")
    world.fire(case, "decline", "2026-03-05T10:00", reason="profil de Camille Durand non retenu")
    assert anonymise(engine, parse_instant("2026-06-04T10:00"), policy) == 0
    assert _candidate(engine, candidate).name == "Camille Durand"
    assert anonymise(engine, parse_instant("2026-06-05T10:00"), policy) == 1
    row = _candidate(engine, candidate)
    assert "Camille" not in row.name and "camille" not in row.email and row.anonymised_at is not None
    with Session(engine) as s:
        history = s.exec(select(History).where(History.case_id == case).order_by(History.id)).all()
    assert [h.event for h in history] == ["present", "decline"]  # the history keeps its shape
    assert history[1].data["reason"] == ANONYMOUS
    assert anonymise(engine, parse_instant("2027-01-01"), policy) == 0  # once


def test_retained_and_active_candidates_keep_their_data(world, engine, policy) -> None:
    signed = world.signed()
    waiting = world.candidate()
    world.present(world.structure(), waiting, at="2026-03-01T10:00")
    assert anonymise(engine, parse_instant("2030-01-01"), policy) == 0
    with Session(engine) as s:
        assert all(c.anonymised_at is None for c in s.exec(select(Candidate)))
    assert signed


def test_consent_keeps_the_data_two_years(world, engine, policy) -> None:
    from states import registry
    from states.db import write_session

    with write_session(engine) as s:
        candidate = registry.add_candidate(s, name="Lou Martin", email="lou@exemple.fr", consent=True)
    case = world.present(world.structure(), candidate, at="2026-03-01T10:00")
    world.fire(case, "withdraw", "2026-03-02T10:00")
    assert anonymise(engine, parse_instant("2027-03-01T10:00"), policy) == 0
    assert anonymise(engine, parse_instant("2028-03-02T10:00"), policy) == 1
