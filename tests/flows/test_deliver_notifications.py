"""deliver-notifications: each notification sent once; failures retried with backoff, visible on the row."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from typing import Any

import pytest
from prefect.artifacts import Artifact
from sqlmodel import col, select

from flows.notifications import deliver_notifications
from states import registry
from states.clock import parse_instant, utc
from states.db import read_session, write_session
from states.models import Outbox

AT = parse_instant("2026-03-01T10:05")


def _presented(world: Any, n: int) -> None:
    """Present ``n`` candidates to a structure that has an e-mail address: one notification each."""
    with write_session(world.engine) as s:
        structure = registry.add_structure(
            s, name="Médiathèque de Poitiers", departement="86", posts=n, email="mediatheque@poitiers.fr"
        )
    for _ in range(n):
        world.present(structure, world.candidate(), at="2026-03-01T10:00")


def _rows(conum_env: Any) -> list[Outbox]:
    with read_session(conum_env.engine) as s:
        return list(s.exec(select(Outbox).order_by(col(Outbox.id))).all())


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_each_notification_is_sent_once_however_often_the_run_runs(world: Any, conum_env: Any) -> None:
    _presented(world, 3)  # each presentation tells the structure and the candidate

    first = deliver_notifications(at=AT)
    second = deliver_notifications(at=AT + timedelta(minutes=5))

    assert first == {"sent": 6, "retried": 0, "failed": 0}
    assert second == {"sent": 0, "retried": 0, "failed": 0}
    assert len(list(conum_env.mail_dir.glob("*.eml"))) == 6
    assert [(r.status, r.attempts) for r in _rows(conum_env)] == [("sent", 1)] * 6
    sent = Artifact.get("deliver-notifications")
    assert sent is not None and sent.flow_run_id is not None
    assert sent.data == "[]"  # the latest run sent nothing


def test_a_failed_send_is_retried_later_and_later_and_shows_on_the_row(
    world: Any, conum_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _presented(world, 2)  # four mails: the structure and the candidate of each
    monkeypatch.setenv("CONUM_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CONUM_SMTP_PORT", str(_closed_port()))

    state = deliver_notifications(at=AT, return_state=True)

    assert state.is_completed() and state.result() == {"sent": 0, "retried": 4, "failed": 0}
    rows = _rows(conum_env)
    assert {(r.status, r.attempts) for r in rows} == {("pending", 1)}
    assert all("cannot reach the SMTP server" in (r.last_error or "") for r in rows)
    first_retry = {utc(r.next_attempt_at) for r in rows}
    assert first_retry == {AT + timedelta(minutes=1)}
    problems = Artifact.get("deliver-notifications-problems")
    assert problems is not None and problems.flow_run_id == state.state_details.flow_run_id
    assert {p["envoi"] for p in json.loads(str(problems.data))} == {r.id for r in rows}

    assert deliver_notifications(at=AT + timedelta(seconds=30))["retried"] == 0  # not due again yet
    assert deliver_notifications(at=AT + timedelta(minutes=1))["retried"] == 4
    rows = _rows(conum_env)
    assert {(r.status, r.attempts) for r in rows} == {("pending", 2)}
    assert {utc(r.next_attempt_at) for r in rows} == {AT + timedelta(minutes=3)}  # waits twice as long

    monkeypatch.delenv("CONUM_SMTP_HOST")
    assert deliver_notifications(at=AT + timedelta(minutes=3))["sent"] == 4
    assert {(r.status, r.attempts, r.last_error) for r in _rows(conum_env)} == {("sent", 3, None)}
