"""Mail goes to the recipients read from the database: over SMTP, or into one .eml file each."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from outboxes import AT, SmtpServer, expected_mails, make_settings, outbox_id, rows
from sqlalchemy import Engine

from states.errors import BadInput
from states.outbox import deliver

# ---------------------------------------------------------------- SMTP


def test_smtp_delivers_each_mail_with_its_french_subject_and_body(
    outbox: Engine, smtp: SmtpServer, tmp_path: Path
) -> None:
    expected = expected_mails(outbox)
    settings = make_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=smtp.port)
    report = deliver(outbox, AT, settings)
    assert report.counts() == {"sent": len(expected) + 1, "retried": 0, "failed": 0}  # + the payment order
    assert sorted(outbox_id(m) for m in smtp.messages) == sorted(expected)
    addresses = {s.outbox_id: s.to for s in report.deliveries}
    for rcpt, msg in smtp.handler.received:
        subject, body = expected[outbox_id(msg)]
        assert msg["Subject"] == subject
        assert msg.get_content_type() == "text/plain" and msg.get_content_charset() == "utf-8"
        assert msg.get_content().replace("\r\n", "\n") == body  # SMTP carries CRLF line ends
        assert rcpt == [addresses[outbox_id(msg)]] and msg["To"].addresses[0].addr_spec == rcpt[0]
        assert msg["From"] == settings.mail_from
    sample = next(m for m in smtp.messages if "Ordre de reversement" in str(m["Subject"]))
    assert "Montant à reverser" in sample.get_content()
    assert not list((tmp_path / "mail").glob("*")), "no .eml file is written when SMTP is configured"


# ---------------------------------------------------------------- .eml files


def test_without_smtp_host_each_mail_becomes_one_eml_file(outbox: Engine, tmp_path: Path) -> None:
    expected = expected_mails(outbox)
    settings = make_settings(tmp_path)
    deliver(outbox, AT, settings)
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == len(expected)
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        assert (msg["Subject"], msg.get_content()) == expected[outbox_id(msg)]
        assert email.utils.parsedate_to_datetime(msg["Date"]) == AT
    deliver(outbox, AT + timedelta(hours=1), settings)
    assert sorted((tmp_path / "mail").glob("*.eml")) == files


def test_recipients_are_read_from_the_database(outbox: Engine, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, prefet_email="pref-{departement}@exemple.gouv.fr", anct_email="cn@anct.fr")
    report = deliver(outbox, AT, settings)
    to = {(d.kind, d.recipient): d.to for d in report.deliveries}
    assert to[("time_out", "prefet")] == "pref-33@exemple.gouv.fr"
    assert to[("escalation_anct", "anct")] == "cn@anct.fr"
    assert to[("training_convocation", "training_org")].startswith("formation-")
    assert to[("time_out", "candidate")] == "camille@exemple.fr"


def test_kinds_and_limit_choose_what_is_delivered(outbox: Engine, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(BadInput, match="holiday_card"):
        deliver(outbox, AT, settings, kinds=["holiday_card"])
    assert {r.status for r in rows(outbox)} == {"pending"}, "a refused call changes nothing"
    only = deliver(outbox, AT, settings, kinds=["time_out"])
    assert {d.kind for d in only.deliveries} == {"time_out"}
    assert only.sent == len([r for r in rows(outbox) if r.kind == "time_out"]) > 0
    two = deliver(outbox, AT, settings, limit=2, chunk=1)
    assert two.sent == 2
