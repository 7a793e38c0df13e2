"""The ``conum`` command on PostgreSQL.

Each test gets a database of its own, created on the server's ``test``
database and dropped afterwards. Skipped, saying why, when no server answers
on 127.0.0.1:5432 (or ``CONUM_TEST_PG_URL``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import race_two_signings
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from states import batch, registry, service
from states.clock import parse_instant
from states.db import get_engine, write_session
from states.policy import Policy

PG_URL = os.environ.get("CONUM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CONUM = Path(sys.executable).with_name("conum")
POLICY = Policy()
T0 = "2026-03-02T10:00"
SWEEP_AT = "2026-03-12T11:00"
N_EACH = 200  # cases per kind of deadline step: 600 cases, more than one chunk of the sweep

pytestmark = pytest.mark.postgres


def _libpq(sqlalchemy_url: str) -> str:
    """The same URL in the form psycopg takes."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _admin() -> Any:
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(_libpq(PG_URL), autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {make_url(PG_URL).render_as_string()}: {exc}".strip())


def _drop(admin: Any, name: str, url: str) -> None:
    get_engine(url).dispose()
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[str]:
    """The URL of a database of its own, initialised by ``conum init``."""
    admin = _admin()
    name = f"conum_test_{uuid.uuid4().hex[:12]}"
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        assert run(tmp_path, url, "init").json() == {"ok": True}
        yield url
    finally:
        _drop(admin, name, url)
        admin.close()


class Done:
    def __init__(self, proc: subprocess.CompletedProcess[str] | subprocess.Popen[str], out: str, err: str) -> None:
        self.code, self.stdout, self.stderr = proc.returncode, out, err

    def json(self) -> Any:
        assert self.code == 0, self.stderr
        assert self.stdout.count("\n") == 1, self.stdout
        return json.loads(self.stdout)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CONUM_") or k == "CONUM_CLOCK"}


def run(cwd: Path, url: str, *args: object) -> Done:
    argv = [str(CONUM), *map(str, args), "--db", url, "--json"]
    p = subprocess.run(argv, capture_output=True, text=True, env=_env(), cwd=cwd, timeout=120)
    return Done(p, p.stdout, p.stderr)


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the schema."""
    with engine.connect() as con:
        tables = [
            r[0]
            for r in con.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"))
        ]
        return {t: [tuple(r) for r in con.execute(text(f'SELECT * FROM "{t}" ORDER BY 1'))] for t in tables}


def snapshot(engine: Engine) -> dict[int, dict[str, Any]]:
    """Each case with its row, history and outbox."""
    cases: dict[int, dict[str, Any]] = {}
    with engine.connect() as con:
        for row in con.execute(
            text("SELECT id, state, escalation_level, due_step, due_at, version, last_at FROM recruitment_case")
        ):
            cases[row[0]] = {"case": tuple(row), "history": [], "outbox": []}
        for row in con.execute(text("SELECT case_id, event, from_state, to_state, actor, at FROM history ORDER BY id")):
            cases[row[0]]["history"].append(tuple(row[1:]))
        for row in con.execute(text("SELECT case_id, kind, recipient FROM outbox ORDER BY id")):
            cases[row[0]]["outbox"].append(tuple(row[1:]))
    for c in cases.values():
        c["outbox"].sort()
    return cases


def at(text_: str, days: int = 0) -> datetime:
    return parse_instant(text_) + timedelta(days=days)


@pytest.mark.slow
def test_cli_happy_path_on_postgresql(pg: str, tmp_path: Path) -> None:
    def ok(*args: object) -> Any:
        return run(tmp_path, pg, *args).json()

    assert ok("init") == {"ok": True}  # a second init is a no-op upgrade
    sid = ok("structure", "add", "--name", "Médiathèque de Poitiers", "--departement", "86", "--posts", 1)["id"]
    cid = ok("candidate", "add", "--name", "Amina Diallo", "--email", "amina@exemple.fr")["id"]
    org = ok("training-org", "add", "--name", "Simplon.co")["id"]
    case = ok("present", "--structure", sid, "--candidate", cid, "--at", "2026-03-20T10:00")["id"]
    actor = ("--actor", f"structure:{sid}")
    assert ok("sweep", "--at", "2026-03-30T10:00") == {"reminded": 1, "escalated": 0, "timed_out": 0}

    engine = get_engine(pg)
    before = dump(engine)
    refused = run(tmp_path, pg, "advance", case, "sign_contract", "--at", "2026-03-31")
    assert refused.code == 1 and refused.stdout == ""
    assert "candidate_presented" in refused.stderr and "select" in refused.stderr
    assert dump(engine) == before

    ok("advance", case, "select", *actor, "--at", "2026-03-31T09:00")
    ok("advance", case, "contact_training_org", "--set", f"org={org}", *actor, "--at", "2026-04-01T09:00")
    view = ok(
        "advance",
        case,
        "sign_contract",
        "--set",
        "type=CDD",
        "--set",
        "start=2026-05-04",
        "--set",
        "end=2028-05-03",
        "--set",
        "salary=1850.00",
        *actor,
        "--at",
        "2026-04-20T10:00",
    )
    subsidy = view["subsidy_cents"]
    assert subsidy == POLICY.subsidy.public_cents
    ok("advance", case, "start_training", *actor, "--at", "2026-05-04T09:00")
    ok("advance", case, "complete_training", "--set", "date=2026-09-01", *actor, "--at", "2026-09-01T17:00")
    # one run on the last day of the funded period pays the three tranches, in order
    assert ok("pay", "--at", "2028-05-03T08:00") == {"paid": 3, "amount_cents": subsidy}
    view = ok("show", case)
    assert view["state"] == "tranches_paid"
    assert [t["status"] for t in view["tranches"]] == ["paid"] * 3
    assert [h["event"] for h in view["history"]] == [
        "present", "remind", "select", "contact_training_org", "sign_contract", "start_training",
        "complete_training", "pay_tranche", "pay_tranche", "pay_final_tranche",
    ]  # fmt: skip
    assert all(datetime.fromisoformat(h["at"]).utcoffset() is not None for h in view["history"])
    assert [c["id"] for c in ok("list", "--state", "tranches_paid", "--departement", "86")["cases"]] == [case]


@pytest.mark.slow
def test_two_sweeps_at_once_on_postgresql_fire_each_deadline_once(pg: str, tmp_path: Path) -> None:
    engine = get_engine(pg)
    with write_session(engine) as s:
        structures = [registry.add_structure(s, name=f"Mairie {i}", departement="86", posts=5) for i in range(10)]
        selected = []
        for i in range(3 * N_EACH):
            cid = registry.add_candidate(s, name=f"Candidat {i}", email=f"candidat{i}@exemple.fr")
            presented = at(T0, days=(0, -5, -20)[i % 3])  # day-10 reminder / day-15 time-out / selected
            case = service.present(s, structures[i % 10], cid, at=presented, policy=POLICY)
            if i % 3 == 2:
                selected.append(case.id or 0)
        for case_id in selected:  # 16 days before the sweep: the préfet escalation is due
            service.fire(s, case_id, "select", at=at(T0, days=-6), policy=POLICY)

    # the oracle: one sequential sweep on a copy of the same database
    name = make_url(pg).database
    copy = f"{name}_oracle"
    oracle_url = make_url(pg).set(database=copy).render_as_string(hide_password=False)
    engine.dispose()
    admin = _admin()
    admin.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{name}"')
    try:
        before = snapshot(engine)
        report = batch.sweep(get_engine(oracle_url), parse_instant(SWEEP_AT), POLICY)
        expected = report.counts()
        assert not report.failures and sum(expected.values()) == 3 * N_EACH and all(expected.values())
        oracle = snapshot(get_engine(oracle_url))
    finally:
        _drop(admin, copy, oracle_url)
        admin.close()

    argv = [str(CONUM), "sweep", "--at", SWEEP_AT, "--db", pg, "--json"]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
        for _ in range(2)
    ]
    reports = [Done(p, *p.communicate(timeout=180)).json() for p in procs]
    assert {k: sum(r[k] for r in reports) for k in expected} == expected
    after = snapshot(engine)
    assert after == oracle
    assert all(len(after[c]["history"]) == len(before[c]["history"]) + 1 for c in after)


def test_two_contracts_signed_at_once_on_postgresql_respect_the_quota(pg: str) -> None:
    engine = get_engine(pg)
    cases, refused = race_two_signings(engine)
    states = sorted(snapshot(engine)[c]["case"][1] for c in cases)
    assert states == ["contract_signed", "training_org_contacted"], f"one post, two contracts: {states}"
    assert len(refused) == 1


def test_a_simulated_programme_gives_the_same_figures_and_mail_on_postgresql(pg: str, tmp_path: Path) -> None:
    """The main job on PostgreSQL, with its delivery process reading PostgreSQL snapshots, as on SQLite."""
    from states.simulation import make_config, simulate

    config = make_config(30, 5, "2026-01-05", POLICY)
    on_pg = simulate(pg, POLICY, config, tmp_path / "pg" / "report.html")
    on_sqlite = simulate(f"sqlite:///{tmp_path / 'lite.db'}", POLICY, config, tmp_path / "lite" / "report.html")
    assert on_pg.ok and on_sqlite.ok
    mine, theirs = on_pg.to_dict(), on_sqlite.to_dict()
    for d in (mine, theirs):
        d.pop("report"), d.pop("database")
    assert mine == theirs
    for folder in ("mail", "payments"):
        pg_files = {p.name: p.read_bytes() for p in sorted((tmp_path / "pg" / folder).iterdir())}
        assert pg_files == {p.name: p.read_bytes() for p in sorted((tmp_path / "lite" / folder).iterdir())}
        assert pg_files
