"""Every person hears of every decision about them: the matrix, its templates, and the rows each event puts."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from outboxes import ROOT, rows
from sqlalchemy import Engine

from states.db import read_session
from states.errors import ConumError
from states.lifecycle import EVENTS, OPENING
from states.models import Outbox
from states.notifications import (
    APPLICATION_MATRIX,
    CONDITIONS,
    FILE_KINDS,
    MATRIX,
    RECIPIENTS,
    SILENT,
    mail_kinds_used,
    markdown,
)
from states.outbox import build_context
from states.outbox.render import mail_kinds, render

# ---------------------------------------------------------------- the matrix as data


def test_every_event_of_the_table_is_in_the_matrix_or_said_silent() -> None:
    events = {e.name for e in (OPENING, *EVENTS)}
    told = {n.event for n in MATRIX}
    assert told | set(SILENT) == events and not told & set(SILENT)
    for name in ("select", "decline", "withdraw", "cancel", "start_training", "complete_training"):
        assert name in told, f"{name} tells no one"


def test_every_cell_has_a_known_recipient_condition_and_template() -> None:
    kinds = set(mail_kinds())
    for n in MATRIX + APPLICATION_MATRIX:
        assert n.recipient in RECIPIENTS, n
        assert n.kind in kinds or n.kind in FILE_KINDS, f"{n}: add templates/mail/{n.kind}.j2"
        assert (n.recipient == "payment") == (n.kind in FILE_KINDS), n
    assert {n.when for n in MATRIX} <= set(CONDITIONS)
    assert len(set(MATRIX)) == len(MATRIX), "a cell is listed twice"


def test_every_template_is_used_by_the_matrix() -> None:
    assert set(mail_kinds()) == mail_kinds_used()


def test_the_documented_matrix_is_generated_from_the_data() -> None:
    page = (ROOT / "docs" / "notifications.md").read_text(encoding="utf-8")
    assert page == markdown(), "docs/notifications.md is stale: write states.notifications.markdown() into it"


# ---------------------------------------------------------------- what the service puts in the outbox


def _told(engine: Engine, case: int) -> set[tuple[str, str]]:
    return {(r.kind, r.recipient) for r in rows(engine) if r.case_id == case}


def _after(engine: Engine, case: int, before: set[int]) -> set[tuple[str, str]]:
    return {(r.kind, r.recipient) for r in rows(engine) if r.case_id == case and r.id not in before}


def test_every_cell_of_the_matrix_is_written_by_the_real_service(every_kind: Engine) -> None:
    emitted = {(r.kind, r.recipient) for r in rows(every_kind)}
    assert emitted == {(n.kind, n.recipient) for n in MATRIX}


def test_declining_tells_the_candidate_and_the_structure(world: Any) -> None:
    case = world.present(world.structure(), world.candidate())
    before = {r.id for r in rows(world.engine)}
    world.fire(case, "decline", "2026-03-02T10:00", actor="structure:1", reason="profil éloigné")
    assert _after(world.engine, case, before) == {("declined", "candidate"), ("declined", "structure")}


def test_withdrawing_tells_the_structure_and_confirms_to_the_candidate(world: Any) -> None:
    candidate = world.candidate()
    case = world.present(world.structure(), candidate)
    world.fire(case, "select", "2026-03-02T10:00")
    before = {r.id for r in rows(world.engine)}
    world.fire(case, "withdraw", "2026-03-03T10:00", actor=f"candidate:{candidate}")
    assert _after(world.engine, case, before) == {("withdrawn", "structure"), ("withdrawn", "candidate")}


def test_signing_elsewhere_tells_the_other_structure(world: Any) -> None:
    candidate = world.candidate()
    other = world.present(world.structure(), candidate, at="2026-02-20T10:00")
    before = {r.id for r in rows(world.engine)}
    hired = world.signed(candidate=candidate)
    assert _after(world.engine, other, before) == {("signed_elsewhere", "structure")}
    assert ("contract_signed", "candidate") in _told(world.engine, hired)


def test_cancelling_tells_the_structure_and_the_candidate(world: Any) -> None:
    early = world.present(world.structure(), world.candidate())
    world.fire(early, "cancel", "2026-03-02T10:00", actor="prefet:33", reason="poste supprimé")
    assert _after(world.engine, early, set()) - {("candidate_presented", r) for r in ("structure", "candidate")} == {
        ("cancelled", "structure"),
        ("cancelled", "candidate"),
    }
    signed = world.signed()
    before = {r.id for r in rows(world.engine)}
    world.fire(signed, "cancel", "2026-05-04T10:00", reason="structure dissoute")
    assert _after(world.engine, signed, before) == {("rupture", "structure"), ("rupture", "candidate")}


def test_a_refused_event_puts_nothing_in_the_outbox(world: Any) -> None:
    case = world.present(world.structure(), world.candidate())
    before = rows(world.engine)
    with pytest.raises(ConumError):
        world.fire(case, "decline", "2026-03-02T10:00", actor="structure:999", reason="pas le bon")
    assert [r.id for r in rows(world.engine)] == [r.id for r in before]


# ---------------------------------------------------------------- one mail of each kind, read as a person would

#: Names that need elision, as people type them.
NAMES = {"candidate_name": "Amina Diallo", "training_org_name": "Afpa Hauts-de-France"}
WRONG = re.compile(r"\b(?:[Dd]e|[Ll]e|[Qq]ue) (?:Amina|Afpa)\b|\b(?:[Dd]e|[Qq]ue) [AEIOUÉÈaeiouéè]\w+")
ISO_DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")


def test_one_mail_of_each_kind_reads_right(every_kind: Engine, tmp_path: Path) -> None:
    """Each (kind, recipient) renders once with names that need elision; the texts are written out to be read."""
    folder = Path(os.environ.get("CONUM_MAIL_PREVIEW") or tmp_path / "preview")
    folder.mkdir(parents=True, exist_ok=True)
    seen: set[tuple[str, str]] = set()
    with read_session(every_kind) as s:
        for row in s.exec(Outbox.__table__.select().order_by(Outbox.__table__.c.id)).all():  # type: ignore[attr-defined]
            if row.recipient == "payment" or (row.kind, row.recipient) in seen:
                continue
            seen.add((row.kind, row.recipient))
            outbox_row = s.get(Outbox, row.id)
            assert outbox_row is not None
            context = {**build_context(s, outbox_row), **NAMES}
            subject, body = render(row.kind, context)
            text = f"Objet : {subject}\n\n{body}"
            (folder / f"{row.kind}-{row.recipient}.txt").write_text(text, encoding="utf-8")
            where = f"{row.kind} to {row.recipient}"
            assert not WRONG.search(text), f"{where}: missing elision: {WRONG.search(text)}"
            assert not ISO_DATE.search(text), f"{where}: an ISO date: {ISO_DATE.search(text)}"
            assert "(s)" not in text and "None" not in text, where
            assert f"n° {row.case_id}" in text, f"{where}: the mail does not name its case"
            contact = re.search(r"(?m)^(Pour toute question|Le préfet du département)", body)
            assert contact, f"{where}: the mail does not say whom to contact"
            assert body[contact.start() - 2 : contact.start()] == "\n\n", f"{where}: the contact is not a paragraph"
    assert seen == {(n.kind, n.recipient) for n in MATRIX if n.kind not in FILE_KINDS}
    contract = (folder / "contract_signed-structure.txt").read_text(encoding="utf-8")
    assert "Le contrat d'Amina Diallo est enregistré" in contract
    assert "auprès d'Afpa Hauts-de-France" in (folder / "training_convocation-candidate.txt").read_text("utf-8")
