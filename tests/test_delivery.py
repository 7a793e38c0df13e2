"""Delivering the outbox: French mails over a real SMTP server or into .eml files, payment order files, retries."""

from __future__ import annotations

import email
import email.policy
import json
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import jinja2
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, create_engine, text
from sqlmodel import select

from states import batch, delivery, registry, service
from states.clock import parse_instant, utc
from states.config import Settings
from states.db import get_engine, migrate, read_session, snapshot, write_session
from states.delivery import SENDING_LEASE, build_context, deliver, render, requeue
from states.errors import BadInput
from states.models import Case, Outbox, Structure, TrainingOrg, Tranche
from states.policy import Policy

ROOT = Path(__file__).resolve().parent.parent
AT = parse_instant("2026-12-01T08:00")
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# ---------------------------------------------------------------- a real SMTP server


class Collector:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.received.append((list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port, self.handler = port, Collector()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=port)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[EmailMessage]:
        return [m for _, m in self.handler.received]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer(free_port()) as server:
        yield server


def make_settings(tmp_path: Path, **over: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp_host": None,
        "mail_dir": str(tmp_path / "mail"),
        "payment_dir": str(tmp_path / "payments"),
        "max_attempts": 3,
    }
    values.update(over)
    return Settings(**values)


# ---------------------------------------------------------------- an outbox produced by the real service


def walk_every_notification(world: Any) -> dict[str, int]:
    """Drive cases through the lifecycle so that the service emits every kind of notification."""
    engine, policy = world.engine, world.policy
    timed_out = world.present(world.structure(), world.candidate())
    late = world.present(world.structure(), world.candidate())
    world.fire(late, "select", "2026-03-02T10:00")
    batch.sweep(engine, parse_instant("2026-03-11T12:00"), policy)  # reminder
    batch.sweep(engine, parse_instant("2026-03-17T12:00"), policy)  # time-out, préfet
    batch.sweep(engine, parse_instant("2026-04-02T12:00"), policy)  # ANCT
    broken = world.signed()
    world.fire(broken, "start_training", "2026-04-02T09:00", date="2026-04-02")
    world.fire(broken, "complete_training", "2026-08-03T09:00", date="2026-08-03")
    batch.pay(engine, parse_instant("2026-08-04T06:00"), policy)  # tranche 1
    world.fire(broken, "break_contract", "2026-10-01T09:00", reason="demission", date="2026-09-30")
    return {"timed_out": timed_out, "late": late, "broken": broken}


def give_addresses(engine: Engine) -> None:
    with write_session(engine) as s:
        for st in s.exec(select(Structure)).all():
            st.email = f"structure-{st.id}@exemple.fr"
            s.add(st)
        for org in s.exec(select(TrainingOrg)).all():
            org.email = f"formation-{org.id}@exemple.fr"
            s.add(org)


@pytest.fixture
def outbox(world: Any) -> Engine:
    walk_every_notification(world)
    give_addresses(world.engine)
    engine: Engine = world.engine
    return engine


def rows(engine: Engine) -> list[Outbox]:
    with read_session(engine) as s:
        return list(s.exec(select(Outbox).order_by(Outbox.id)).all())  # type: ignore[arg-type]


def expected_mails(engine: Engine) -> dict[int, tuple[str, str]]:
    """Render, from each mail row, the subject and body a recipient must receive."""
    with read_session(engine) as s:
        mails = s.exec(select(Outbox).where(Outbox.recipient != "payment")).all()
        return {r.id or 0: render(r.kind, build_context(s, r)) for r in mails}


def outbox_id(msg: EmailMessage) -> int:
    found = re.match(r"<conum-outbox-(\d+)\.", str(msg["Message-ID"]))
    assert found, msg["Message-ID"]
    return int(found.group(1))


# ---------------------------------------------------------------- templates


def test_every_kind_renders_from_payloads_of_the_real_service(outbox: Engine) -> None:
    all_rows = rows(outbox)
    emitted = {r.kind for r in all_rows}
    assert emitted - {delivery.PAYMENT_KIND} == set(delivery.mail_kinds()), "a kind lacks a template or a walk"
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
        signed = s.exec(select(Outbox).where(Outbox.kind == "contract_signed", Outbox.recipient == "structure")).one()
        subject, body = render(signed.kind, build_context(s, signed))
        p = signed.payload
    assert delivery.euros(p["subsidy_cents"]) in subject
    for t in p["tranches"]:
        assert f"tranche {t['number']} : {delivery.euros(t['amount_cents'])}" in body
    assert delivery.french_day(p["contract_start"]) in body and delivery.french_day(p["contract_end"]) in body
    assert p["contract_start"] not in body, "an ISO date leaked into the mail"


def test_a_cancelled_contract_tells_the_structure_the_case_is_cancelled(world: Any) -> None:
    case = world.signed()
    world.fire(case, "cancel", "2026-05-04T10:00", reason="structure dissoute")
    with read_session(world.engine) as s:
        rupture = s.exec(select(Outbox).where(Outbox.kind == "rupture", Outbox.recipient == "structure")).one()
        subject, body = render(rupture.kind, build_context(s, rupture))
    assert subject.startswith("Dossier annulé") and "motif : structure dissoute" in body
    assert "Aucun reversement n'est dû." in body  # nothing was paid before the cancellation


@pytest.mark.parametrize(
    ("cents", "shown"),
    [(1_250_000, "12 500,00 €"), (5, "0,05 €"), (123_456_789, "1 234 567,89 €"), (100, "1,00 €")],
)
def test_amounts_use_french_separators(cents: int, shown: str) -> None:
    assert delivery.euros(cents) == shown.replace(" ", "\u00a0")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2026-03-16", "16 mars 2026"),
        ("2026-04-01", "1er avril 2026"),
        ("2026-08-31T23:30:00+00:00", "1er septembre 2026"),  # already the next day in Paris
    ],
)
def test_dates_are_written_in_french(value: str, shown: str) -> None:
    assert delivery.french_day(value) == shown


def test_instants_are_shown_in_paris_time() -> None:
    assert delivery.french_instant("2026-03-16T09:00:00+00:00") == "16 mars 2026 à 10 h 00"
    assert delivery.french_instant("2026-08-04T04:05:00+00:00") == "4 août 2026 à 6 h 05"


def test_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(delivery.UnknownKind, match=r"'holiday_card'.*candidate_presented"):
        render("holiday_card", {})


def test_a_missing_template_variable_fails_instead_of_printing_blank() -> None:
    with pytest.raises(jinja2.UndefinedError, match="case_id"):
        render("reminder", {"recipient": "structure", "candidate_name": "Camille Durand"})


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
        assert rcpt == [addresses[outbox_id(msg)]] and msg["To"] == rcpt[0]
        assert msg["From"] == settings.mail_from
    sample = next(m for m in smtp.messages if "Ordre de reversement" in str(m["Subject"]))
    assert "Montant à reverser" in sample.get_content()
    assert not list((tmp_path / "mail").glob("*")), "no .eml file is written when SMTP is configured"


def test_each_notification_is_sent_once_across_two_runs(outbox: Engine, smtp: SmtpServer, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=smtp.port)
    first = deliver(outbox, AT, settings)
    second = deliver(outbox, AT + timedelta(days=1), settings)
    assert first.sent > 0 and second.counts() == {"sent": 0, "retried": 0, "failed": 0}
    ids = [outbox_id(m) for m in smtp.messages]
    assert len(ids) == len(set(ids)) == len(expected_mails(outbox))
    assert {r.status for r in rows(outbox)} == {"sent"}
    assert all(utc(r.sent_at) == AT for r in rows(outbox) if r.sent_at)


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
    assert report.counts() == {"sent": 1, "retried": 0, "failed": 1}
    row = next(r for r in rows(world.engine) if r.case_id == case)
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


# ---------------------------------------------------------------- payment orders


def documented_fields() -> set[str]:
    doc = (ROOT / "docs" / "payment-orders.md").read_text()
    return set(re.findall(r"^\| `([a-z_.]+)` \|", doc, flags=re.M))


def flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        out[prefix + key] = value
        if isinstance(value, dict):
            out.update(flatten(value, prefix + key + "."))
    return out


def test_payment_orders_are_written_once_with_the_documented_fields(world: Any, tmp_path: Path) -> None:
    walk_every_notification(world)
    settings = make_settings(tmp_path)
    deliver(world.engine, AT, settings, kinds=["payment_order"])
    files = list((tmp_path / "payments").iterdir())
    with read_session(world.engine) as s:
        paid = s.exec(select(Tranche).where(Tranche.status == "paid")).all()
        assert len(paid) == 1
        tranche = paid[0]
        case = s.get(Case, tranche.case_id)
        assert case is not None and tranche.due_on is not None and tranche.paid_at is not None
        structure = s.get(Structure, case.structure_id)
        assert structure is not None
    assert [f.name for f in files] == [f"payment-order-case{tranche.case_id}-tranche{tranche.number}.json"]
    order = json.loads(files[0].read_text(encoding="utf-8"))
    assert set(flatten(order)) == documented_fields()
    assert order["amount_cents"] == tranche.amount_cents and order["tranche_number"] == tranche.number
    assert order["case_id"] == case.id and order["subsidy_cents"] == case.subsidy_cents
    assert order["due_on"] == tranche.due_on.isoformat()
    assert datetime.fromisoformat(order["paid_at"]) == utc(tranche.paid_at)
    assert order["structure"] == {
        "id": structure.id,
        "name": structure.name,
        "kind": structure.kind,
        "departement": structure.departement,
    }
    assert order["reference"] == delivery.payment_reference(tranche.case_id, tranche.number)
    assert order["final"] is False


def test_an_interrupted_delivery_resends_after_the_lease_without_a_second_payment_file(
    outbox: Engine, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    deliver(outbox, AT, settings)
    before = {p.name: p.read_bytes() for p in (tmp_path / "payments").iterdir()}
    # a deliverer that wrote its files and stopped before recording it leaves its rows 'sending'
    with write_session(outbox) as s:
        for r in s.exec(select(Outbox)).all():
            r.status, r.next_attempt_at = "sending", AT + SENDING_LEASE
            s.add(r)
    assert deliver(outbox, AT + SENDING_LEASE - timedelta(seconds=1), settings).sent == 0, "still leased"
    again = deliver(outbox, AT + SENDING_LEASE, settings)
    assert again.sent == len(rows(outbox)), "at least once: every interrupted row goes out again"
    assert {p.name: p.read_bytes() for p in (tmp_path / "payments").iterdir()} == before
    assert {(r.status, r.attempts) for r in rows(outbox)} == {("sent", 2)}


def test_a_second_tranche_gets_its_own_file(world: Any, tmp_path: Path) -> None:
    case = world.signed()
    world.fire(case, "start_training", "2026-04-02T09:00", date="2026-04-02")
    world.fire(case, "complete_training", "2026-08-03T09:00", date="2026-08-03")
    batch.pay(world.engine, parse_instant("2026-08-04T06:00"), world.policy)
    batch.pay(world.engine, parse_instant("2027-04-02T06:00"), world.policy)
    deliver(world.engine, parse_instant("2027-04-03"), make_settings(tmp_path), kinds=["payment_order"])
    names = sorted(p.name for p in (tmp_path / "payments").iterdir())
    assert names == [f"payment-order-case{case}-tranche1.json", f"payment-order-case{case}-tranche2.json"]


# ---------------------------------------------------------------- concurrent deliverers (real processes)

DELIVERER = """
import sys
from states.clock import parse_instant
from states.config import Settings
from states.db import get_engine
from states.delivery import deliver
url, port, mail_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
settings = Settings(smtp_host="127.0.0.1", smtp_port=port, mail_dir=mail_dir, payment_dir=mail_dir)
print(deliver(get_engine(url), parse_instant("2026-12-01T08:00"), settings, chunk=5).sent)
"""


def fill_outbox(engine: Engine, n: int) -> None:
    policy = Policy()
    with write_session(engine) as s:
        org = registry.add_structure(s, name="Médiathèque", departement="33", posts=n, email="m@exemple.fr")
        for i in range(n):
            cand = registry.add_candidate(s, name=f"Candidat {i}", email=f"c{i}@exemple.fr")
            service.present(s, org, cand, at=parse_instant("2026-03-01T10:00"), policy=policy)


def run_deliverers(url: str, port: int, folder: Path, count: int) -> int:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DELIVERER, url, str(port), str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]
    total = 0
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        total += int(out.strip())
    return total


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"conum_delivery_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is not reachable ({exc})")
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        migrate(url)
        yield url
    finally:
        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_deliverers_send_each_notification_once(
    backend: str, request: pytest.FixtureRequest, smtp: SmtpServer, tmp_path: Path
) -> None:
    url: str = request.getfixturevalue("db_url" if backend == "sqlite" else "pg_url")
    n = 60
    fill_outbox(get_engine(url), n)
    sent = run_deliverers(url, smtp.port, tmp_path / "mail", count=3)
    ids = [outbox_id(m) for m in smtp.messages]
    assert sent == n == len(ids) == len(set(ids)), "each row sent by exactly one deliverer"
    assert {r.status for r in rows(get_engine(url))} == {"sent"}


# ---------------------------------------------------------------- rendering from a snapshot


def test_mail_rendered_from_a_snapshot_says_what_the_database_said_then(outbox: Engine, tmp_path: Path) -> None:
    """The simulation's delivery process renders a day's mail from the day's snapshot, whenever it runs."""
    settings = make_settings(tmp_path)
    taken = delivery.claim(outbox, AT, settings, 500, None, delivery.DeliveryReport())
    with read_session(outbox) as s:
        names = {org.name for org in s.exec(select(TrainingOrg)).all()}
    then = snapshot(outbox)
    try:
        with write_session(outbox) as s:  # after the snapshot: the training organisation is renamed
            for org in s.exec(select(TrainingOrg)).all():
                org.name = "Organisme renommé depuis"
                s.add(org)
        old = {job.id: job.body for job in delivery.prepare(then, taken, settings)}
    finally:
        then.close()
    new = {job.id: job.body for job in delivery.prepare(outbox, taken, settings)}
    naming = {i for i, body in old.items() if any(name in body for name in names)}
    assert naming  # the contract and the convocation name the organisation
    assert not any("renommé" in body for body in old.values())
    assert {i for i in old if old[i] != new[i]} == naming
    assert all("Organisme renommé depuis" in new[i] for i in naming)
