"""Helpers shared by the test modules: a migrated database to copy, and a dump of every row."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from states import registry, service
from states.clock import parse_instant
from states.db import get_engine, migrate, write_session
from states.policy import Policy


@cache
def migrated_database() -> Path:
    """Return a SQLite file migrated to the latest revision, once per run."""
    folder = Path(tempfile.mkdtemp(prefix="conum-migrated-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    url = f"sqlite:///{folder / 'template.db'}"
    migrate(url)
    get_engine(url).dispose()  # closing the last connection folds the write-ahead log into the file
    return folder / "template.db"


@contextmanager
def migrated_pg_database(prefix: str) -> Iterator[str]:
    """Create a migrated PostgreSQL database of its own on the test server; yield its URL, then drop it.

    Skips the test, saying why, when no server answers (``CONUM_TEST_PG_URL``, else 127.0.0.1:5432).
    """
    import os
    import uuid

    import pytest
    from sqlalchemy.engine import make_url

    psycopg = pytest.importorskip("psycopg")
    server = os.environ.get("CONUM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    try:
        admin = psycopg.connect(
            make_url(server).set(drivername="postgresql").render_as_string(False), autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable: {exc}".strip())
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        yield url
    finally:
        get_engine(url).dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def fresh_database(folder: Path) -> str:
    """Copy the migrated database into ``folder``; return its URL (faster than migrating again)."""
    shutil.copy(migrated_database(), folder / "conum.db")
    return f"sqlite:///{folder / 'conum.db'}"


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of every table of the (SQLite) database, to compare before and after a refusal."""
    with engine.connect() as conn:
        tables = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").scalars()
        return {
            name: [tuple(r) for r in conn.exec_driver_sql(f'SELECT * FROM "{name}" ORDER BY rowid')]
            for name in list(tables)
        }


def race_two_signings(engine: Engine) -> tuple[list[int], dict[int, Exception]]:
    """Sign two contracts at once for a structure with one post; return the two cases and the refusals.

    The second signing starts while the first is not committed yet, and goes as far as it can.
    """
    import threading

    from states import registry, service
    from states.clock import parse_instant, shift
    from states.db import write_session
    from states.errors import ConumError
    from states.policy import Policy

    policy, t0 = Policy(), parse_instant("2026-03-02T10:00")
    with write_session(engine) as s:
        org = registry.add_training_org(s, name="Simplon.co")
        sid = registry.add_structure(s, name="Mairie", departement="86", posts=1)
        cases = []
        for i in range(2):
            cid = registry.add_candidate(s, name=f"C {i}", email=f"c{i}@exemple.fr")
            case = service.present(s, sid, cid, at=t0, policy=policy).id or 0
            service.fire(s, case, "select", at=shift(t0, 1), policy=policy)
            service.fire(s, case, "contact_training_org", at=shift(t0, 2), data={"org": org}, policy=policy)
            cases.append(case)
    contract = {"type": "CDI", "start": "2026-04-01", "salary": "1900.00"}
    refused: dict[int, Exception] = {}

    def sign(case: int) -> None:
        try:
            with write_session(engine) as s:
                service.fire(s, case, "sign_contract", at=shift(t0, 3), data=contract, policy=policy)
        except ConumError as exc:
            refused[case] = exc

    rival = threading.Thread(target=sign, args=(cases[1],))
    try:
        with write_session(engine) as s:
            service.fire(s, cases[0], "sign_contract", at=shift(t0, 3), data=contract, policy=policy)
            rival.start()
            rival.join(timeout=2)
    except ConumError as exc:
        refused[cases[0]] = exc
    rival.join(timeout=90)
    assert not rival.is_alive(), "the second signing never finished"
    return cases, refused


PG_URL = os.environ.get("CONUM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def postgres_database(prefix: str = "conum_test") -> Iterator[str]:
    """Create a PostgreSQL database of its own on the test server, migrated; yield its URL; drop it.

    It never skips: a test that asks for PostgreSQL fails when the server does not answer.
    """
    import psycopg
    from sqlalchemy.engine import make_url

    admin = psycopg.connect(
        make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False),
        autocommit=True,
        connect_timeout=5,
    )
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        migrate(url)
        yield url
    finally:
        get_engine(url).dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def walk_case(s: Any, structure: int, org: int, *, to: str) -> int:
    """One case (of a new candidate) taken to ``to`` (``presented``, ``contacted`` or ``in_post``); return its id."""
    cid = registry.add_candidate(s, name="Lou Martin", email="lou@exemple.fr")
    case = service.present(s, structure, cid, at=parse_instant("2026-03-02T10:00"), policy=Policy()).id or 0
    if to == "presented":
        return case
    service.fire(s, case, "select", at=parse_instant("2026-03-03T10:00"), policy=Policy())
    service.fire(
        s, case, "contact_training_org", at=parse_instant("2026-03-04T10:00"), data={"org": org}, policy=Policy()
    )
    if to == "contacted":
        return case
    contract = {"type": "CDD", "start": "2026-04-01", "end": "2028-03-31", "salary": "1900.00"}
    service.fire(s, case, "sign_contract", at=parse_instant("2026-03-05T10:00"), data=contract, policy=Policy())
    service.fire(s, case, "start_training", at=parse_instant("2026-04-02T10:00"), policy=Policy())
    service.fire(
        s, case, "complete_training", at=parse_instant("2026-08-03T10:00"), data={"date": "2026-08-03"}, policy=Policy()
    )
    return case


def walked_cases(url: str, n: int, to: str) -> list[int]:
    """``n`` cases of one structure with ``n`` posts, each taken to ``to`` (see ``walk_case``)."""
    with write_session(get_engine(url)) as s:
        org = registry.add_training_org(s, name="Simplon.co")
        structure = registry.add_structure(s, name="Mairie", departement="86", posts=n)
        return [walk_case(s, structure, org, to=to) for _ in range(n)]


def hold_case(url: str, case: int) -> Any:
    """Another transaction takes the row lock of ``case`` and keeps it until rolled back."""
    import psycopg
    from sqlalchemy.engine import make_url

    conn = psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
    conn.execute("SELECT id FROM recruitment_case WHERE id = %s FOR UPDATE", (case,))
    return conn
