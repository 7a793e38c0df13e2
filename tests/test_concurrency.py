"""Concurrent ``conum`` processes on one SQLite file.

Each test starts real ``conum`` processes at the same time on the same file
and compares the outcome with what a single sequential run does on a copy of
the same data (the oracle): every deadline step and every tranche happens once,
whoever runs, and a process killed in the middle leaves each case either
untouched or completely done.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import race_two_signings
from sqlalchemy import Engine, text

from states import batch, registry, service
from states.clock import parse_instant
from states.db import get_engine, migrate, write_session
from states.policy import Policy

CONUM = Path(sys.executable).with_name("conum")
POLICY = Policy()

T0 = "2026-03-02T10:00"  # Europe/Paris
#: Every case of the "due" fixture has one deadline step due at this instant.
SWEEP_AT = "2026-03-12T11:00"
N_EACH = 250  # cases per kind of step: 750 cases make a sweep of two chunks (500 a chunk)
#: Contracts start on 2026-04-01: tranches 1 (in post) and 2 (12 months later) are due then.
PAY_AT = "2027-04-01T12:00"
N_PAY = 150

pytestmark = pytest.mark.slow


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def at(text: str, days: int = 0) -> datetime:
    return parse_instant(text) + timedelta(days=days)


def copy_db(src: Path, dst: Path) -> Path:
    """Copy a SQLite database (WAL included) with the backup API."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()
    return dst


def snapshot(engine: Engine) -> dict[int, dict[str, Any]]:
    """Each case with its row, history, tranches and outbox: what a user can see of it."""
    cases: dict[int, dict[str, Any]] = {}
    with engine.connect() as con:
        for row in con.execute(
            text(
                "SELECT id, state, escalation_level, due_step, due_at, deadline_at, version, last_at "
                "FROM recruitment_case ORDER BY id"
            )
        ):
            cases[row[0]] = {"case": tuple(row), "history": [], "tranches": [], "outbox": []}
        for row in con.execute(
            text("SELECT case_id, event, from_state, to_state, actor, at, data FROM history ORDER BY id")
        ):
            cases[row[0]]["history"].append(tuple(row[1:]))
        for row in con.execute(
            text("SELECT case_id, number, amount_cents, due_on, status, paid_at FROM tranche ORDER BY id")
        ):
            cases[row[0]]["tranches"].append(tuple(row[1:]))
        for row in con.execute(text("SELECT case_id, kind, recipient FROM outbox ORDER BY id")):
            cases[row[0]]["outbox"].append(tuple(row[1:]))
    for c in cases.values():
        c["outbox"].sort()
    return cases


def start(db: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONUM_") or k == "CONUM_CLOCK"}
    return subprocess.Popen(
        [str(CONUM), *args, "--db", url(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=db.parent,
    )


@dataclass
class Done:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        assert self.code == 0, self.stderr
        assert self.stdout.count("\n") == 1, self.stdout
        value: dict[str, Any] = json.loads(self.stdout)
        return value


def finish(proc: subprocess.Popen[str]) -> Done:
    out, err = proc.communicate(timeout=180)
    return Done(proc.returncode, out, err)


def sweep_rows(path: Path) -> int:
    """History rows written by sweeps so far (read from another connection, as a monitor would)."""
    con = sqlite3.connect(path, timeout=30)
    try:
        return int(
            con.execute("SELECT count(*) FROM history WHERE event IN ('remind', 'escalate', 'time_out')").fetchone()[0]
        )
    finally:
        con.close()


# ---------------------------------------------------------------- fixtures built with the Python API


def build_due(path: Path) -> None:
    """Cases of three kinds, each with one deadline step due at SWEEP_AT: a reminder, an escalation, a time-out."""
    u = url(path)
    migrate(u)
    engine = get_engine(u)
    with write_session(engine) as s:
        structures = [registry.add_structure(s, name=f"Médiathèque {i}", departement="33", posts=5) for i in range(10)]
        cases = []
        for i in range(3 * N_EACH):
            cid = registry.add_candidate(s, name=f"Candidat {i}", email=f"candidat{i}@exemple.fr")
            kind = i % 3
            presented = at(T0, days=(0, -5, -20)[kind])  # day-10 reminder / day-15 time-out / selected
            case = service.present(s, structures[i % 10], cid, at=presented, policy=POLICY)
            cases.append((case.id or 0, kind))
        for case_id, kind in cases:
            if kind == 2:  # selected 16 days before the sweep: the préfet escalation is due
                service.fire(s, case_id, "select", at=at(T0, days=-6), policy=POLICY)
    engine.dispose()


def build_in_post(path: Path) -> None:
    """Cases in post whose tranches 1 and 2 are due at PAY_AT."""
    u = url(path)
    migrate(u)
    engine = get_engine(u)
    with write_session(engine) as s:
        org = registry.add_training_org(s, name="Simplon.co")
        structures = [
            registry.add_structure(s, name=f"Mairie {i}", departement="86", posts=N_PAY // 10) for i in range(10)
        ]
        for i in range(N_PAY):
            cid = registry.add_candidate(s, name=f"Conseiller {i}", email=f"conseiller{i}@exemple.fr")
            case = service.present(s, structures[i % 10], cid, at=at("2026-03-02T10:00"), policy=POLICY).id or 0
            for event, when, data in (
                ("select", "2026-03-03T10:00", {}),
                ("contact_training_org", "2026-03-04T10:00", {"org": org}),
                (
                    "sign_contract",
                    "2026-03-05T10:00",
                    {"type": "CDD", "start": "2026-04-01", "end": "2028-03-31", "salary": "1900.00"},
                ),
                ("start_training", "2026-04-01T09:00", {}),
                ("complete_training", "2026-08-03T09:00", {}),
            ):
                service.fire(s, case, event, at=at(when), data=data, policy=POLICY)
    engine.dispose()


@dataclass
class Prepared:
    """A database, what it holds before the run, and what one sequential run makes of it."""

    path: Path
    before: dict[int, dict[str, Any]]
    after: dict[int, dict[str, Any]]
    counts: dict[str, int]


@pytest.fixture(scope="module")
def due(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    folder = tmp_path_factory.mktemp("due")
    build_due(folder / "due.db")
    oracle = copy_db(folder / "due.db", folder / "oracle.db")
    before = snapshot(get_engine(url(oracle)))
    report = batch.sweep(get_engine(url(oracle)), parse_instant(SWEEP_AT), POLICY)
    assert not report.failures
    counts = report.counts()
    assert sum(counts.values()) == 3 * N_EACH and all(counts.values()), counts
    return Prepared(folder / "due.db", before, snapshot(get_engine(url(oracle))), counts)


@pytest.fixture(scope="module")
def in_post(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    folder = tmp_path_factory.mktemp("in_post")
    build_in_post(folder / "in_post.db")
    oracle = copy_db(folder / "in_post.db", folder / "oracle.db")
    before = snapshot(get_engine(url(oracle)))
    report = batch.pay(get_engine(url(oracle)), parse_instant(PAY_AT), POLICY)
    assert not report.failures and report.paid == 2 * N_PAY
    counts = {"paid": report.paid, "amount_cents": report.amount_cents}
    return Prepared(folder / "in_post.db", before, snapshot(get_engine(url(oracle))), counts)


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    return tmp_path / "conum.db"


# ---------------------------------------------------------------- the tests


def test_two_sweeps_at_once_fire_each_deadline_exactly_once(due: Prepared, tmp_path: Path) -> None:
    db = copy_db(due.path, tmp_path / "race.db")
    procs = [start(db, "sweep", "--at", SWEEP_AT, "--json") for _ in range(2)]
    reports = [finish(p).json() for p in procs]
    total = {k: sum(r[k] for r in reports) for k in due.counts}
    assert total == due.counts
    after = snapshot(get_engine(url(db)))
    # every case ends exactly as one sequential sweep leaves it: one history row, its notifications, once
    assert after == due.after
    assert all(len(after[c]["history"]) == len(due.before[c]["history"]) + 1 for c in after)


def test_two_payment_runs_at_once_pay_each_tranche_once(in_post: Prepared, tmp_path: Path) -> None:
    db = copy_db(in_post.path, tmp_path / "race.db")
    procs = [start(db, "pay", "--at", PAY_AT, "--json") for _ in range(2)]
    reports = [finish(p).json() for p in procs]
    assert sum(r["paid"] for r in reports) == in_post.counts["paid"]
    assert sum(r["amount_cents"] for r in reports) == in_post.counts["amount_cents"]
    after = snapshot(get_engine(url(db)))
    assert after == in_post.after
    for c in after.values():
        paid = [t for t in c["tranches"] if t[3] == "paid"]
        assert [t[0] for t in paid] == [1, 2]
        assert [h[0] for h in c["history"]].count("pay_tranche") == 2
        assert [o for o in c["outbox"] if o[0] == "payment_order"] == [("payment_order", "payment")] * 2
    # a third run finds nothing left to pay
    assert finish(start(db, "pay", "--at", PAY_AT, "--json")).json() == {"paid": 0, "amount_cents": 0}


def test_two_processes_advancing_one_case_exactly_one_wins(fresh: Path) -> None:
    migrate(url(fresh))
    engine = get_engine(url(fresh))
    with write_session(engine) as s:
        sid = registry.add_structure(s, name="Médiathèque", departement="33", posts=2)
        people = [registry.add_candidate(s, name=f"C {i}", email=f"c{i}@exemple.fr") for i in range(2)]
        rival = service.present(s, sid, people[0], at=at(T0), policy=POLICY).id or 0
        twice = service.present(s, sid, people[1], at=at(T0), policy=POLICY).id or 0
    when = ("--at", "2026-03-03T10:00", "--json")
    races = {
        rival: [
            start(
                fresh,
                "advance",
                str(rival),
                "decline",
                "--set",
                "reason=poste pourvu",
                "--actor",
                f"structure:{sid}",
                *when,
            ),
            start(fresh, "advance", str(rival), "withdraw", "--actor", f"candidate:{people[0]}", *when),
        ],
        twice: [start(fresh, "advance", str(twice), "select", "--actor", f"structure:{sid}", *when) for _ in range(2)],
    }
    for case, procs in races.items():
        done = [finish(p) for p in procs]
        winners = [d for d in done if d.code == 0]
        losers = [d for d in done if d.code != 0]
        assert len(winners) == 1 and len(losers) == 1, [(d.code, d.stderr) for d in done]
        won, lost = winners[0].json(), losers[0]
        assert lost.code in (1, 3) and lost.stdout == ""
        message = lost.stderr.strip()
        assert "\n" not in message
        assert "rule: lifecycle" in message or "someone else" in message, message
        if "rule: lifecycle" in message:
            assert f"state '{won['state']}'" in message  # the loser is told where the case now is
        view = snapshot(engine)[case]
        assert len(view["history"]) == 2
        assert view["history"][-1][0] == won["history"][-1]["event"]
        assert view["case"][1] == won["state"] == view["history"][-1][2]
        assert view["case"][6] == won["version"]


def test_a_sweep_killed_midway_leaves_each_case_whole_and_a_rerun_does_the_rest(due: Prepared, tmp_path: Path) -> None:
    db = copy_db(due.path, tmp_path / "killed.db")
    total = sum(due.counts.values())
    proc = start(db, "sweep", "--at", SWEEP_AT, "--json")
    deadline = time.monotonic() + 120
    while sweep_rows(db) == 0:  # wait for the first chunk to commit, then kill during the next
        assert proc.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    engine = get_engine(url(db))
    killed = snapshot(engine)
    finished = [c for c in killed if killed[c] == due.after[c]]
    untouched = [c for c in killed if killed[c] == due.before[c]]
    assert len(finished) + len(untouched) == len(killed), "a case was left half-done"
    done = sweep_rows(db)
    assert done == len(finished)
    assert 0 < done < total, "the kill did not land in the middle of the sweep"

    rerun = finish(start(db, "sweep", "--at", SWEEP_AT, "--json")).json()
    assert sum(rerun.values()) == total - done
    assert snapshot(engine) == due.after  # no case reminded, escalated or timed out twice


def test_two_contracts_signed_at_once_respect_the_quota(fresh: Path) -> None:
    """The second signing waits for the first and then sees the post taken."""
    migrate(url(fresh))
    engine = get_engine(url(fresh))
    cases, refused = race_two_signings(engine)
    states = [snapshot(engine)[c]["case"][1] for c in cases]
    assert sorted(states) == ["contract_signed", "training_org_contacted"], states
    assert len(refused) == 1
