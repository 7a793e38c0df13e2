"""Names and addresses outside ASCII reach their recipient: encoded names, IDNA domains, SMTPUTF8."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from outboxes import AT, SmtpServer, expected_mails, free_port, make_settings, outbox_id, rows

from states.db import write_session
from states.outbox import deliver
from states.registry import add_candidate, add_structure

SENDER = "Équipe Conseiller numérique <ne-pas-repondre@conum.fr>"
STRUCTURE = "Médiathèque Émile-Zola"
PERSON = "Hélène Núñez"


def _present(world: Any) -> dict[str, int]:
    """One presentation: the structure has an internationalised domain, the candidate a UTF-8 local part."""
    with write_session(world.engine) as s:
        structure = add_structure(s, name=STRUCTURE, departement="33", posts=1, email="accueil@médiathèque-bègles.fr")
        candidate = add_candidate(s, name=PERSON, email="hélène@exemple.fr")
    case = world.present(structure, candidate)
    return {r.recipient: r.id or 0 for r in rows(world.engine) if r.case_id == case}


def test_names_and_international_addresses_travel_over_smtp(world: Any, smtp: SmtpServer, tmp_path: Path) -> None:
    ids = _present(world)
    expected = expected_mails(world.engine)
    settings = make_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=smtp.port, mail_from=SENDER)
    assert deliver(world.engine, AT, settings).counts() == {"sent": 2, "retried": 0, "failed": 0}
    # RFC 6532: the headers of a mail sent with SMTPUTF8 are UTF-8 text
    parsed = [email.message_from_string(raw.decode("utf-8"), policy=email.policy.default) for raw in smtp.handler.raw]
    got = {outbox_id(m): (rcpt, m) for (rcpt, _), m in zip(smtp.handler.received, parsed, strict=True)}
    rcpt, to_structure = got[ids["structure"]]
    assert rcpt == ["accueil@xn--mdiathque-bgles-zmbfg.fr"], "the domain travels in its IDNA form"
    rcpt, to_person = got[ids["candidate"]]
    assert rcpt == ["hélène@exemple.fr"], "a UTF-8 local part travels as it is, with SMTPUTF8"
    for msg, name in ((to_structure, STRUCTURE), (to_person, PERSON)):
        assert isinstance(msg, EmailMessage)
        assert msg["To"].addresses[0].display_name == name
        assert msg["From"].addresses[0].display_name == "Équipe Conseiller numérique"
        assert (msg["Subject"], msg.get_content().replace("\r\n", "\n")) == expected[outbox_id(msg)]
    raw = to_structure.as_bytes()
    assert raw.isascii(), "without SMTPUTF8 every header is ASCII (encoded words)"


def test_a_server_without_smtputf8_fails_only_the_utf8_address_saying_why(world: Any, tmp_path: Path) -> None:
    ids = _present(world)
    server = SmtpServer(free_port())
    server.controller = Controller(server.handler, hostname="127.0.0.1", port=server.port, enable_SMTPUTF8=False)
    with server:
        settings = make_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=server.port)
        report = deliver(world.engine, AT, settings)
    assert report.counts() == {"sent": 1, "retried": 0, "failed": 1}
    assert [outbox_id(m) for m in server.messages] == [ids["structure"]]
    failed = next(r for r in rows(world.engine) if r.id == ids["candidate"])
    assert failed.status == "failed" and "SMTPUTF8" in (failed.last_error or "")


def test_an_eml_file_keeps_the_names_and_the_utf8_address(world: Any, tmp_path: Path) -> None:
    ids = _present(world)
    deliver(world.engine, AT, make_settings(tmp_path, mail_from=SENDER))
    files = {int(p.name.split("-")[1]): p for p in (tmp_path / "mail").glob("*.eml")}
    msg = email.message_from_string(files[ids["candidate"]].read_text("utf-8"), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["To"].addresses[0].addr_spec == "hélène@exemple.fr"
    assert msg["To"].addresses[0].display_name == PERSON
    assert msg.get_content().startswith(f"Bonjour {PERSON},")
