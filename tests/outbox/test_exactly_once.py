"""Each notification is sent once: across runs, and by concurrent deliverers; after an interruption, again."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from outboxes import AT, ROOT, SmtpServer, expected_mails, make_settings, outbox_id, rows
from sqlalchemy import Engine, create_engine, text
from sqlmodel import select

from states import registry, service
from states.clock import parse_instant, utc
from states.db import get_engine, migrate, write_session
from states.models import Outbox
from states.outbox import SENDING_LEASE, deliver
from states.policy import Policy

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def test_each_notification_is_sent_once_across_two_runs(outbox: Engine, smtp: SmtpServer, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=smtp.port)
    first = deliver(outbox, AT, settings)
    second = deliver(outbox, AT + timedelta(days=1), settings)
    assert first.sent > 0 and second.counts() == {"sent": 0, "retried": 0, "failed": 0}
    ids = [outbox_id(m) for m in smtp.messages]
    assert len(ids) == len(set(ids)) == len(expected_mails(outbox))
    assert {r.status for r in rows(outbox)} == {"sent"}
    assert all(utc(r.sent_at) == AT for r in rows(outbox) if r.sent_at)


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


# ---------------------------------------------------------------- concurrent deliverers (real processes)

DELIVERER = """
import sys
from states.clock import parse_instant
from states.config import Settings
from states.db import get_engine
from states.outbox import deliver
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
    queued = len(rows(get_engine(url)))
    assert queued == 2 * n  # each presentation tells the structure and the candidate
    sent = run_deliverers(url, smtp.port, tmp_path / "mail", count=3)
    ids = [outbox_id(m) for m in smtp.messages]
    assert sent == queued == len(ids) == len(set(ids)), "each row sent by exactly one deliverer"
    assert {r.status for r in rows(get_engine(url))} == {"sent"}
