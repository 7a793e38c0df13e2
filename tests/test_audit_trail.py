"""The audit trail: the database refuses to rewrite the history, and a rewrite that got through is found."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import migrated_pg_database
from sqlalchemy import text
from sqlalchemy.engine import make_url

from states import registry, service
from states.audit import verify
from states.clock import parse_instant
from states.db import get_engine, write_session
from states.policy import Policy

CONUM = Path(sys.executable).with_name("conum")
PG_URL = os.environ.get("CONUM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def walk(world: Any) -> tuple[int, int]:
    """Two cases with a few steps each: one signed, one declined with a reason."""
    signed = world.signed()
    declined = world.present(world.structure(), world.candidate(), at="2026-03-01T10:00")
    world.fire(declined, "decline", "2026-03-05T10:00", reason="profil éloigné du poste")
    return signed, declined


def test_a_fresh_history_verifies(world: Any, engine: Any) -> None:
    walk(world)
    result = verify(engine)
    assert result.ok and result.cases == 2 and result.rows == 6


def test_sqlite_refuses_to_change_or_delete_history_rows(world: Any, db_url: str) -> None:
    walk(world)
    con = sqlite3.connect(make_url(db_url).database or "")
    try:
        for statement in ("UPDATE history SET actor = 'admin'", "DELETE FROM history"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                con.execute(statement)
    finally:
        con.close()


def _forge(db_url: str, *statements: str) -> None:
    """Do what someone with the database's file and its rights could: drop the triggers, rewrite rows."""
    con = sqlite3.connect(make_url(db_url).database or "")
    with con:
        con.execute("DROP TRIGGER history_no_update")
        con.execute("DROP TRIGGER history_no_delete")
        for statement in statements:
            con.execute(statement)
    con.close()


def test_a_changed_row_is_named_by_verify(world: Any, engine: Any, db_url: str) -> None:
    signed, declined = walk(world)
    with engine.connect() as conn:
        target = conn.execute(
            text("SELECT id FROM history WHERE case_id = :c AND event = 'select'"), {"c": signed}
        ).scalar()
    _forge(db_url, f"UPDATE history SET actor = 'structure:99' WHERE id = {target}")
    result = verify(engine)
    assert [(b.case_id, b.history_id) for b in result.broken] == [(signed, target)]
    assert "changed" in result.broken[0].reason
    assert verify(engine, declined).ok


def test_a_removed_row_is_found_in_the_middle_and_at_the_end(world: Any, engine: Any, db_url: str) -> None:
    signed, declined = walk(world)
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM history WHERE case_id = :c ORDER BY id"), {"c": signed}).scalars().all()
        last_of_declined = conn.execute(
            text("SELECT max(id) FROM history WHERE case_id = :c"), {"c": declined}
        ).scalar()
    _forge(db_url, f"DELETE FROM history WHERE id = {ids[1]}", f"DELETE FROM history WHERE id = {last_of_declined}")
    broken = {b.case_id: b for b in verify(engine).broken}
    assert broken[signed].history_id == ids[2] and "removed" in broken[signed].reason
    assert broken[declined].history_id is None  # the case's recorded end no longer matches its last row


def test_conum_verify_exits_non_zero_and_names_the_row(world: Any, engine: Any, db_url: str) -> None:
    signed, _ = walk(world)
    env = {**os.environ, "CONUM_CLOCK": "simulated"}
    ok = subprocess.run([CONUM, "verify", "--db", db_url, "--json"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and '"ok": true' in ok.stdout
    _forge(db_url, f"UPDATE history SET data = '{{}}' WHERE case_id = {signed} AND event = 'sign_contract'")
    bad = subprocess.run([CONUM, "verify", "--db", db_url], capture_output=True, text=True, env=env)
    assert bad.returncode == 1
    assert f"case {signed}: row" in bad.stdout and "changed" in bad.stdout
    shown = subprocess.run([CONUM, "show", str(signed), "--db", db_url], capture_output=True, text=True, env=env)
    assert shown.returncode == 0 and "this history was rewritten outside Conum" in shown.stdout


def test_personal_free_text_stays_out_of_the_history_rows(world: Any, engine: Any) -> None:
    _, declined = walk(world)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT data FROM history WHERE case_id = :c"), {"c": declined}).scalars().all()
        notes = conn.execute(text("SELECT text FROM history_note WHERE case_id = :c"), {"c": declined}).all()
    assert not any("profil" in str(r) for r in rows)
    assert notes == [("profil éloigné du poste",)]


def test_each_case_records_the_versions_it_runs_under(world: Any, engine: Any) -> None:
    signed, _ = walk(world)
    with engine.connect() as conn:
        versions = conn.execute(
            text("SELECT lifecycle_version, policy_version FROM recruitment_case WHERE id = :c"), {"c": signed}
        ).one()
    assert all(v and len(v) == 16 for v in versions)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with migrated_pg_database("conum_audit") as url:
        yield url


@pytest.mark.postgres
def test_postgresql_refuses_to_change_delete_or_truncate_the_history(pg_url: str) -> None:
    engine, policy = get_engine(pg_url), Policy()
    with write_session(engine) as s:
        structure = registry.add_structure(s, name="Mairie", departement="33", posts=1)
        candidate = registry.add_candidate(s, name="Lou Martin", email="lou@exemple.fr")
        case = service.present(s, structure, candidate, at=parse_instant("2026-03-01T10:00"), policy=policy)
        service.fire(
            s, case.id or 0, "decline", at=parse_instant("2026-03-02T10:00"), data={"reason": "x"}, policy=policy
        )
    for statement in ("UPDATE history SET actor = 'admin'", "DELETE FROM history", "TRUNCATE history CASCADE"):
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    assert verify(engine).ok


def test_the_dashboard_counts_the_cases_whose_history_was_rewritten(world: Any, engine: Any, db_url: str) -> None:
    from states import dashboard

    signed, _ = walk(world)
    at = parse_instant("2026-03-20T10:00")
    assert dashboard.build(engine, at).broken_histories == 0
    _forge(db_url, f"UPDATE history SET actor = 'structure:99' WHERE case_id = {signed} AND event = 'select'")
    board = dashboard.build(engine, at)
    assert board.broken_histories == 1
    assert "Historiques rompus (modifiés hors de Conum, voir `conum verify`) : **1**" in board.summary_markdown()


def _documented_role_sql(role: str, database: str) -> list[str]:
    """The statements docs/audit-trail.md gives for the application's role, for ``role`` on ``database``."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "audit-trail.md").read_text(encoding="utf-8")
    block = doc.split("```sql\n", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if line.strip() and not line.startswith("--")]
    sql = "\n".join(lines).replace("conum_app", role).replace("DATABASE conum ", f'DATABASE "{database}" ')
    return [s.replace(" PASSWORD '…'", "").strip() for s in sql.split(";") if s.strip()]


@pytest.mark.postgres
def test_the_documented_application_role_works_but_cannot_rewrite_the_history(pg_url: str) -> None:
    """With the role docs/audit-trail.md describes, Conum runs, and the history stays out of reach."""
    role = f"conum_app_{uuid.uuid4().hex[:8]}"
    database = make_url(pg_url).database or ""
    admin = psycopg.connect(make_url(pg_url).set(drivername="postgresql").render_as_string(False), autocommit=True)
    app_url = make_url(pg_url).set(username=role).render_as_string(hide_password=False)
    try:
        for statement in _documented_role_sql(role, database):
            admin.execute(statement)
        engine, policy = get_engine(app_url), Policy()
        with write_session(engine) as s:  # the application works with it
            structure = registry.add_structure(s, name="Mairie", departement="33", posts=1)
            candidate = registry.add_candidate(s, name="Lou Martin", email="lou@exemple.fr")
            case = service.present(s, structure, candidate, at=parse_instant("2026-03-01T10:00"), policy=policy)
            service.fire(s, case.id or 0, "select", at=parse_instant("2026-03-02T10:00"), policy=policy)
        for statement in (
            "ALTER TABLE history DISABLE TRIGGER history_append_only",
            "UPDATE history SET actor = 'admin'",
            "DELETE FROM history",
            "TRUNCATE history CASCADE",
        ):
            with pytest.raises(Exception, match=r"permission denied|must be owner"), engine.begin() as conn:
                conn.execute(text(statement))
        assert verify(engine).ok
        engine.dispose()
    finally:
        admin.execute(f'DROP OWNED BY "{role}"')
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()
