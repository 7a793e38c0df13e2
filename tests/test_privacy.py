"""Data protection: candidates not retained are anonymised after their retention period."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from states.audit import verify
from states.clock import parse_instant
from states.config import Settings
from states.errors import NotFound, RuleViolation
from states.models import Candidate, History, HistoryNote, Outbox
from states.outbox import deliver
from states.privacy import ANONYMOUS, anonymise, export
from states.views import get_case


def _candidate(engine, cid: int) -> Candidate:
    with Session(engine) as s:
        row = s.get(Candidate, cid)
        assert row is not None
        return row


def test_declined_candidate_is_anonymised_three_months_after_the_end(world, engine, policy, tmp_path) -> None:
    from states import registry
    from states.db import write_session

    with write_session(engine) as s:
        structure = registry.add_structure(
            s, name="Mairie de Blaye", departement="33", posts=1, email="mairie@blaye.fr"
        )
    candidate = world.candidate()
    case = world.present(structure, candidate, at="2026-03-01T10:00")
    world.fire(case, "decline", "2026-03-05T10:00", reason="profil de Camille Durand non retenu")
    deliver(engine, parse_instant("2026-03-05T11:00"), Settings(mail_dir=str(tmp_path), payment_dir=str(tmp_path)))
    mails = sorted(p.name for p in tmp_path.glob("*.eml"))
    assert mails and any("Camille" in p.read_text(encoding="utf-8") for p in tmp_path.glob("*.eml"))
    with Session(engine) as s:
        rows_before = [h.model_dump() for h in s.exec(select(History).where(History.case_id == case))]
    assert anonymise(engine, parse_instant("2026-06-04T10:00"), policy, mail_dir=tmp_path) == 0
    assert _candidate(engine, candidate).name == "Camille Durand"
    assert anonymise(engine, parse_instant("2026-06-05T10:00"), policy, mail_dir=tmp_path) == 1
    row = _candidate(engine, candidate)
    assert "Camille" not in row.name and "camille" not in row.email and row.anonymised_at is not None
    with Session(engine) as s:
        history = s.exec(select(History).where(History.case_id == case).order_by(History.id)).all()
        notes = s.exec(select(HistoryNote).where(HistoryNote.case_id == case)).all()
        payloads = [o.payload for o in s.exec(select(Outbox).where(Outbox.case_id == case))]
    assert [h.model_dump() for h in history] == rows_before  # the history rows are never rewritten
    assert [n.text for n in notes] == [ANONYMOUS]  # the reason typed about them is scrubbed
    assert payloads and "Camille" not in json.dumps(payloads, ensure_ascii=False)
    assert not any("Camille" in p.read_text(encoding="utf-8") for p in tmp_path.glob("*.eml"))
    assert verify(engine).ok  # the hash chain still holds
    assert get_case(engine, case)["history"][1]["data"]["reason"] == ANONYMOUS
    assert anonymise(engine, parse_instant("2027-01-01"), policy) == 0  # once


def test_an_anonymised_candidate_cannot_be_presented_again(world, engine, policy) -> None:
    candidate = world.candidate()
    case = world.present(world.structure(), candidate, at="2026-03-01T10:00")
    world.fire(case, "decline", "2026-03-05T10:00", reason="profil éloigné")
    assert anonymise(engine, parse_instant("2026-06-05T10:00"), policy) == 1
    with pytest.raises(RuleViolation) as err:
        world.present(world.structure(), candidate, at="2026-07-01T10:00")
    assert err.value.rule == "candidate_not_anonymised"


def test_a_candidate_gets_all_their_data(world, engine) -> None:
    candidate = world.candidate()
    case = world.present(world.structure(), candidate, at="2026-03-01T10:00")
    world.fire(case, "withdraw", "2026-03-02T10:00", actor=f"candidate:{candidate}", reason="j'ai trouvé un emploi")
    data = export(engine, candidate)
    assert data["candidate"]["name"] == "Camille Durand" and data["candidate"]["email"] == "camille@exemple.fr"
    [mine] = data["cases"]
    assert mine["id"] == case and [h["event"] for h in mine["history"]] == ["present", "withdraw"]
    assert mine["history"][1]["data"]["reason"] == "j'ai trouvé un emploi"
    with pytest.raises(NotFound):
        export(engine, candidate + 100)


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
