"""Each notification kind renders a French mail from what the real service writes, and from a snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest
from outboxes import AT, make_settings, rows
from sqlalchemy import Engine
from sqlmodel import select

from states.db import read_session, snapshot, write_session
from states.models import Outbox, TrainingOrg
from states.outbox import PAYMENT_KIND, DeliveryReport, build_context, claim, prepare
from states.outbox.render import UnknownKind, euros, french_day, mail_kinds, render

# ---------------------------------------------------------------- templates


def test_every_kind_renders_from_payloads_of_the_real_service(every_kind: Engine) -> None:
    outbox = every_kind
    all_rows = rows(outbox)
    emitted = {r.kind for r in all_rows}
    cases = {k for k in mail_kinds() if not k.startswith("application_")}  # applications: tests/applications
    assert emitted - {PAYMENT_KIND} == cases, "a kind lacks a template or a walk"
    with read_session(outbox) as s:
        for row in all_rows:
            if row.recipient == "payment":
                continue
            subject, body = render(row.kind, build_context(s, row))
            where = f"{row.kind} to {row.recipient}"
            assert subject and "\n" not in subject, where
            assert f"n° {row.case_id}" in subject + body, where
            assert "None" not in subject + body and "{{" not in body, where
            assert row.payload["structure_name"] in body, where
            if row.recipient == "candidate":
                assert body.startswith(f"Bonjour {row.payload['candidate_name']},"), where


def test_amounts_and_dates_read_the_french_way_in_the_mails(outbox: Engine) -> None:
    with read_session(outbox) as s:
        signed = s.exec(select(Outbox).where(Outbox.kind == "contract_signed", Outbox.recipient == "structure")).first()
        assert signed is not None
        subject, body = render(signed.kind, build_context(s, signed))
        p = signed.payload
    assert euros(p["subsidy_cents"]) in subject
    for t in p["tranches"]:
        assert f"tranche {t['number']} : {euros(t['amount_cents'])}" in body
    assert french_day(p["contract_start"]) in body and french_day(p["contract_end"]) in body
    assert p["contract_start"] not in body, "an ISO date leaked into the mail"


def test_a_cancelled_contract_tells_the_structure_the_case_is_cancelled(world: Any) -> None:
    case = world.signed()
    world.fire(case, "cancel", "2026-05-04T10:00", reason="structure dissoute")
    with read_session(world.engine) as s:
        rupture = s.exec(select(Outbox).where(Outbox.kind == "rupture", Outbox.recipient == "structure")).one()
        subject, body = render(rupture.kind, build_context(s, rupture))
    assert subject.startswith("Dossier annulé") and "motif : structure dissoute" in body
    assert "Aucun reversement n'est dû." in body  # nothing was paid before the cancellation


def test_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(UnknownKind, match=r"'holiday_card'.*candidate_presented"):
        render("holiday_card", {})


def test_a_missing_template_variable_fails_instead_of_printing_blank() -> None:
    with pytest.raises(jinja2.UndefinedError, match="case_id"):
        render("reminder", {"recipient": "structure", "candidate_name": "Camille Durand"})


# ---------------------------------------------------------------- rendering from a snapshot


def test_mail_rendered_from_a_snapshot_says_what_the_database_said_then(outbox: Engine, tmp_path: Path) -> None:
    """The simulation's delivery process renders a day's mail from the day's snapshot, whenever it runs."""
    settings = make_settings(tmp_path)
    taken = claim(outbox, AT, settings, 500, None, DeliveryReport())
    with read_session(outbox) as s:
        names = {org.name for org in s.exec(select(TrainingOrg)).all()}
    then = snapshot(outbox)
    try:
        with write_session(outbox) as s:  # after the snapshot: the training organisation is renamed
            for org in s.exec(select(TrainingOrg)).all():
                org.name = "Organisme renommé depuis"
                s.add(org)
        old = {job.id: job.body for job in prepare(then, taken, settings)}
    finally:
        then.close()
    new = {job.id: job.body for job in prepare(outbox, taken, settings)}
    naming = {i for i, body in old.items() if any(name in body for name in names)}
    assert naming  # the contract and the convocation name the organisation
    assert not any("renommé" in body for body in old.values())
    assert {i for i in old if old[i] != new[i]} == naming
    assert all("Organisme renommé depuis" in new[i] for i in naming)
