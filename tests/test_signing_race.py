"""Two signings of one candidate at once, from two real ``conum`` processes, on PostgreSQL and SQLite.

Signing a contract closes the candidate's other open cases. Two structures signing the same candidate
at the same moment each want the other's case: they must wait for each other, not deadlock. The
first signs; the second finds its case withdrawn and is refused in one line. Each round holds what
both signings need first (the candidate's row on PostgreSQL, the write lock on SQLite) until both
wait for it, then lets them go together.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import fresh_database, postgres_database
from sqlalchemy import text
from sqlalchemy.engine import make_url

from states import registry, service
from states.clock import parse_instant
from states.db import get_engine, write_session
from states.policy import Policy

CONUM = Path(sys.executable).with_name("conum")
POLICY = Policy()
ROUNDS = 3
SIGN = ["sign_contract", "--at", "2026-03-05T10:00", "--set", "type=CDI", "--set", "start=2026-04-01"]
SIGN += ["--set", "salary=1900.00"]


def _pair(url: str) -> tuple[int, int, int]:
    """A candidate presented to two structures, both cases ready to sign: (candidate, case A, case B)."""
    with write_session(get_engine(url)) as s:
        org = registry.add_training_org(s, name="Simplon.co")
        candidate = registry.add_candidate(s, name="Lou Martin", email="lou@exemple.fr")
        pair = []
        for dep in ("86", "33"):
            structure = registry.add_structure(s, name="Mairie", departement=dep, posts=1)
            case = service.present(s, structure, candidate, at=parse_instant("2026-03-02T10:00"), policy=POLICY).id
            service.fire(s, case or 0, "select", at=parse_instant("2026-03-03T10:00"), policy=POLICY)
            at = parse_instant("2026-03-04T10:00")
            service.fire(s, case or 0, "contact_training_org", at=at, data={"org": org}, policy=POLICY)
            pair.append(case or 0)
    return candidate, pair[0], pair[1]


def _sign(url: str, case: int) -> subprocess.Popen[str]:
    env = {**os.environ, "CONUM_CLOCK": "simulated"}
    return subprocess.Popen(
        [str(CONUM), "advance", str(case), *SIGN, "--db", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _until(condition: Any, what: str, timeout: float = 120) -> None:
    give_up = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < give_up, f"timed out waiting for {what}"
        time.sleep(0.05)


def _check_round(url: str, a: int, b: int, runs: list[subprocess.Popen[str]]) -> None:
    results = []
    for run in runs:
        out, err = run.communicate(timeout=120)
        results.append((run.returncode, out, err))
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    _, _, err = next(r for r in results if r[0] == 1)
    assert err.count("\n") == 1 and err.startswith("refused:") and "withdrawn" in err, err
    assert "deadlock" not in err.lower() and "Traceback" not in err
    with get_engine(url).connect() as conn:
        states = sorted(conn.execute(text("SELECT state FROM recruitment_case WHERE id IN (:a, :b)"), {"a": a, "b": b}))
    assert [s for (s,) in states] == ["contract_signed", "withdrawn"]


@pytest.mark.postgres
def test_two_signings_of_one_candidate_at_once_never_deadlock_on_postgresql() -> None:
    with postgres_database("conum_signrace") as url:
        libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(libpq, autocommit=True) as watcher:
            waiting = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            for _ in range(ROUNDS):
                candidate, a, b = _pair(url)
                holder = psycopg.connect(libpq)
                holder.execute("SELECT id FROM candidate WHERE id = %s FOR UPDATE", (candidate,))
                runs = [_sign(url, a), _sign(url, b)]
                try:
                    _until(lambda: watcher.execute(waiting).fetchone() == (2,), "both signings to wait")
                finally:
                    holder.rollback()
                    holder.close()
                _check_round(url, a, b, runs)
            deadlocks = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
            time.sleep(0.6)  # the statistics are flushed to the view within half a second
            watcher.execute("SELECT pg_stat_clear_snapshot()")
            assert watcher.execute(deadlocks).fetchone() == (0,)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield fresh_database(tmp_path)


def test_two_signings_of_one_candidate_at_once_on_sqlite(sqlite_url: str) -> None:
    path = make_url(sqlite_url).database or ""
    for _ in range(ROUNDS):
        _, a, b = _pair(sqlite_url)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the write lock both signings need
        runs = [_sign(sqlite_url, a), _sign(sqlite_url, b)]
        try:
            time.sleep(3)  # both processes start and queue behind it (they wait up to 60 s)
            assert all(run.poll() is None for run in runs)
        finally:
            holder.rollback()
            holder.close()
        _check_round(sqlite_url, a, b, runs)


@pytest.mark.postgres
def test_a_duplicate_recorded_meanwhile_is_one_line_naming_it() -> None:
    """Two submissions of one SIRET at once: the second waits on the first's row, then says what exists."""
    from states.applications.service import submit

    siret = "73282932000074"
    with postgres_database("conum_duplicate") as url:
        libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        data = {"name": "Mairie de Bègles", "siret": siret, "kind": "public", "departement": "33", "posts": 2}
        engine = get_engine(url)
        with write_session(engine) as s:
            submit(s, data, at=parse_instant("2026-01-05T10:00"), policy=POLICY)  # not committed yet
            argv = [str(CONUM), "application", "submit", "--name", "Mairie de Bègles", "--departement", "33"]
            run = subprocess.Popen(
                [*argv, "--kind", "public", "--posts", "2", "--siret", siret, "--db", url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "CONUM_CLOCK": "simulated"},
            )
            waiting = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            with psycopg.connect(libpq, autocommit=True) as watcher:
                _until(lambda: watcher.execute(waiting).fetchone() == (1,), "the second submission to wait")
        out, err = run.communicate(timeout=120)
        assert run.returncode == 3, (out, err)
        assert out == "" and err.count("\n") == 1, err
        assert err.startswith("refused: an application with siret 73282932000074 already exists"), err
        assert "rule: conflict" in err
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM structure")).scalar() == 1  # its own was rolled back
