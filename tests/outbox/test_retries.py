"""A failed delivery is retried with a backoff, then fails; an unfixable one fails at once until requeued."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from outboxes import AT, SmtpServer, expected_mails, free_port, make_settings, rows
from sqlalchemy import Engine

from states import registry
from states.clock import utc
from states.db import write_session
from states.models import Structure
from states.outbox import deliver, requeue


def test_a_refused_connection_is_retried_with_backoff_then_fails(outbox: Engine, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=free_port(), max_attempts=3)
    mails = len(expected_mails(outbox))
    report = deliver(outbox, AT, settings)
    assert report.counts() == {"sent": 1, "retried": mails, "failed": 0}, "the payment order still goes out"
    pending = [r for r in rows(outbox) if r.recipient != "payment"]
    for r in pending:
        assert (r.status, r.attempts) == ("pending", 1)
        assert "cannot reach the SMTP server" in (r.last_error or "")
        assert utc(r.next_attempt_at) == AT + timedelta(minutes=1)
    assert deliver(outbox, AT + timedelta(seconds=59), settings).counts()["retried"] == 0, "not due yet"
    deliver(outbox, AT + timedelta(minutes=1), settings)
    assert {(r.attempts, utc(r.next_attempt_at)) for r in rows(outbox) if r.recipient != "payment"} == {
        (2, AT + timedelta(minutes=3))
    }
    last = deliver(outbox, AT + timedelta(minutes=3), settings)
    assert last.counts() == {"sent": 0, "retried": 0, "failed": mails}
    assert all(p.gave_up for p in last.problems)
    failed = [r for r in rows(outbox) if r.recipient != "payment"]
    assert {(r.status, r.attempts) for r in failed} == {("failed", 3)}
    assert all("cannot reach the SMTP server" in (r.last_error or "") for r in failed)
    assert deliver(outbox, AT + timedelta(days=30), settings).sent == 0, "failed rows stay failed"


def test_mail_goes_out_once_the_server_is_back(outbox: Engine, tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=port)
    down = deliver(outbox, AT, settings, kinds=["reminder"])
    assert down.retried == 1
    with SmtpServer(port) as server:
        assert deliver(outbox, AT + timedelta(seconds=30), settings, kinds=["reminder"]).sent == 0, "not due yet"
        up = deliver(outbox, AT + timedelta(minutes=1), settings, kinds=["reminder"])
        assert up.sent == 1 and [m["Subject"] for m in server.messages] == [up.deliveries[0].subject]
    row = next(r for r in rows(outbox) if r.kind == "reminder")
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)


def test_an_unwritable_mail_folder_is_retried_and_the_rest_goes_on(outbox: Engine, tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("")
    settings = make_settings(tmp_path, mail_dir=str(tmp_path / "not-a-folder" / "mail"))
    report = deliver(outbox, AT, settings)
    assert report.sent == 1 and report.retried == len(expected_mails(outbox))
    assert all("CONUM_MAIL_DIR" in (r.last_error or "") for r in rows(outbox) if r.recipient != "payment")
    assert len(list((tmp_path / "payments").glob("*.json"))) == 1


def test_a_structure_without_address_fails_its_rows_at_once_until_requeued(world: Any, tmp_path: Path) -> None:
    with write_session(world.engine) as s:
        known = registry.add_structure(s, name="Mairie de Pessac", departement="33", posts=1, email="mairie@exemple.fr")
    silent = world.structure()  # no e-mail address
    world.present(known, world.candidate())
    case = world.present(silent, world.candidate())
    settings = make_settings(tmp_path)
    report = deliver(world.engine, AT, settings)
    # the known structure's mail and both candidates' go; the silent structure's fails
    assert report.counts() == {"sent": 3, "retried": 0, "failed": 1}
    row = next(r for r in rows(world.engine) if r.case_id == case and r.recipient == "structure")
    assert row.status == "failed" and f"structure {silent}" in (row.last_error or "")
    assert "no e-mail address" in (row.last_error or "")
    with write_session(world.engine) as s:
        st = s.get(Structure, silent)
        assert st is not None
        st.email = "mediatheque@exemple.fr"
        s.add(st)
    assert requeue(world.engine, AT + timedelta(hours=1)) == 1
    again = deliver(world.engine, AT + timedelta(hours=1), settings)
    assert [(d.outbox_id, d.to) for d in again.deliveries] == [(row.id, "mediatheque@exemple.fr")]
