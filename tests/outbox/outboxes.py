"""Helpers of the outbox tests: a real SMTP server, an outbox filled by the real service, what it holds."""

from __future__ import annotations

import email
import email.policy
import re
import socket
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import Engine
from sqlmodel import select

from states import batch
from states.clock import parse_instant
from states.config import Settings
from states.db import read_session, write_session
from states.models import Outbox, Structure, TrainingOrg
from states.outbox import build_context
from states.outbox.render import render

ROOT = Path(__file__).resolve().parents[2]
AT = parse_instant("2026-12-01T08:00")


# ---------------------------------------------------------------- a real SMTP server


class Collector:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], EmailMessage]] = []
        self.raw: list[bytes] = []  # the bytes as received (UTF-8 headers when sent with SMTPUTF8)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.received.append((list(envelope.rcpt_tos), msg))
        self.raw.append(envelope.content)
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
    declined = world.present(world.structure(), world.candidate())
    world.fire(declined, "decline", "2026-03-02T11:00", actor="admin", reason="profil éloigné du poste")
    withdrawn = world.present(world.structure(), world.candidate())
    world.fire(withdrawn, "withdraw", "2026-03-02T11:00", reason="déménagement")
    cancelled = world.present(world.structure(), world.candidate())
    world.fire(cancelled, "cancel", "2026-03-02T11:00", reason="poste supprimé")
    # a candidate presented to two structures signs with one: the other structure hears of it
    twice = world.candidate()
    elsewhere = world.present(world.structure(), twice, at="2026-02-20T10:00")
    hired = world.signed(candidate=twice)
    return {
        "timed_out": timed_out,
        "late": late,
        "broken": broken,
        "declined": declined,
        "withdrawn": withdrawn,
        "cancelled": cancelled,
        "elsewhere": elsewhere,
        "hired": hired,
    }


def walk_to_the_last_tranche(world: Any) -> int:
    """A short contract paid to its last tranche (the subsidy wholly paid); return its case."""
    case = world.signed(end="2026-09-30")
    world.fire(case, "start_training", "2026-04-02T09:00", date="2026-04-02")
    world.fire(case, "complete_training", "2026-08-03T09:00", date="2026-08-03")
    batch.pay(world.engine, parse_instant("2026-10-02T06:00"), world.policy)
    return case


def give_addresses(engine: Engine) -> None:
    with write_session(engine) as s:
        for st in s.exec(select(Structure)).all():
            st.email = f"structure-{st.id}@exemple.fr"
            s.add(st)
        for org in s.exec(select(TrainingOrg)).all():
            org.email = f"formation-{org.id}@exemple.fr"
            s.add(org)


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
