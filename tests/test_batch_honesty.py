"""Honest batch runs on PostgreSQL: work held by another transaction is waited for, or reported, never hidden.

Real PostgreSQL, real ``conum`` processes. The "other run" is this test's own transaction holding
the row lock of a case (what a slow sweep, payment run or operator action does); a deadlock is made
on purpose the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import hold_case, postgres_database, walked_cases
from sqlalchemy import text
from sqlalchemy.engine import make_url

from states import registry, service
from states.clock import parse_instant
from states.db import get_engine, write_session
from states.policy import Policy

CONUM = Path(sys.executable).with_name("conum")
POLICY = Policy()
PAY_AT = "2026-08-04T08:00"  # the first tranche of each case in post is due
SWEEP_AT = "2026-03-12T11:00"  # the day-10 reminder of each presented case is due

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg() -> Iterator[str]:
    with postgres_database("conum_honest") as url:
        yield url


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _conum(url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CONUM_CLOCK": "simulated"}
    return subprocess.Popen(
        [str(CONUM), *args, "--db", url, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _until(condition: Any, what: str, timeout: float = 60) -> None:
    give_up = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < give_up, f"timed out waiting for {what}"
        time.sleep(0.05)


def _paid(url: str) -> set[int]:
    with get_engine(url).connect() as conn:
        return set(conn.execute(text("SELECT case_id FROM tranche WHERE status = 'paid'")).scalars())


def test_a_payment_run_waits_for_the_cases_another_transaction_holds_then_pays_them(pg: str) -> None:
    cases = walked_cases(pg, 3, "in_post")
    holder = hold_case(pg, cases[1])
    run = _conum(pg, "pay", "--at", PAY_AT)
    try:
        _until(lambda: _paid(pg) == {cases[0], cases[2]}, "the free cases to be paid")
        time.sleep(0.5)  # the run is now waiting for the held case, not reporting success
        assert run.poll() is None, f"the payment run ended with a due tranche left unpaid: {run.communicate()}"
    finally:
        holder.rollback()
        holder.close()
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert json.loads(out)["paid"] == 3
    assert _paid(pg) == set(cases)


@pytest.mark.parametrize(
    ("command", "at", "to", "done"),
    [("pay", PAY_AT, "in_post", "paid"), ("sweep", SWEEP_AT, "presented", "reminded")],
)
def test_a_run_that_leaves_held_cases_says_which_and_exits_5(
    pg: str, command: str, at: str, to: str, done: str
) -> None:
    cases = walked_cases(pg, 3, to)
    holder = hold_case(pg, cases[0])
    try:
        run = _conum(pg, command, "--at", at, "--wait", "1")
        out, err = run.communicate(timeout=60)
    finally:
        holder.rollback()
        holder.close()
    assert run.returncode == 5, (out, err)
    report = json.loads(out)
    assert report[done] == 2 and report["held"] == [cases[0]]
    assert err.count("\n") == 1 and err.startswith("incomplete:")
    assert f"({cases[0]})" in err and f"conum {command}" in err
    again = _conum(pg, command, "--at", at, "--wait", "1")
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert json.loads(out)[done] == 1 and "held" not in json.loads(out)  # what was left is done, once


def test_a_deadlock_between_two_signings_is_a_one_line_conflict_and_changes_nothing(pg: str) -> None:
    """Signing case A closes the candidate's other case B while another transaction, holding B, waits for A."""
    with write_session(get_engine(pg)) as s:
        org = registry.add_training_org(s, name="Simplon.co")
        first = registry.add_structure(s, name="Mairie", departement="86", posts=1)
        second = registry.add_structure(s, name="Médiathèque", departement="33", posts=1)
        candidate = registry.add_candidate(s, name="Lou Martin", email="lou@exemple.fr")
        pair = []
        for structure in (first, second):
            case = service.present(s, structure, candidate, at=parse_instant("2026-03-02T10:00"), policy=POLICY).id
            service.fire(s, case or 0, "select", at=parse_instant("2026-03-03T10:00"), policy=POLICY)
            service.fire(
                s,
                case or 0,
                "contact_training_org",
                at=parse_instant("2026-03-04T10:00"),
                data={"org": org},
                policy=POLICY,
            )
            pair.append(case or 0)
    a, b = pair
    with get_engine(pg).connect() as conn:
        before = conn.execute(text("SELECT id, state, version FROM recruitment_case ORDER BY id")).all()
    holder = hold_case(pg, b)
    sign = _conum(
        pg, "advance", str(a), "sign_contract", "--at", "2026-03-05T10:00",
        "--set", "type=CDI", "--set", "start=2026-04-01", "--set", "salary=1900.00",
    )  # fmt: skip
    try:
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        with psycopg.connect(_libpq(pg), autocommit=True) as watcher:
            _until(lambda: watcher.execute(waiting).fetchone() == (1,), "the signing to wait for case B")
        # this transaction now waits for A: a deadlock. The signing has waited longer, so PostgreSQL's
        # detector (after deadlock_timeout, 1 s) runs in its session first and stops the signing.
        holder.execute("SELECT id FROM recruitment_case WHERE id = %s FOR UPDATE", (a,))
    finally:
        holder.rollback()
        holder.close()
    out, err = sign.communicate(timeout=60)
    assert sign.returncode == 3, (out, err)
    assert out == "" and err.count("\n") == 1 and "rule: conflict" in err and "run it again" in err
    with get_engine(pg).connect() as conn:
        assert conn.execute(text("SELECT id, state, version FROM recruitment_case ORDER BY id")).all() == before
