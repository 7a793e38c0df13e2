"""Engines, transactions and the schema.

SQLite (the embedded default) runs in WAL mode; every write transaction
starts with ``BEGIN IMMEDIATE`` so that writers queue instead of failing
half-way, which makes concurrent sweeps and payments serialise. PostgreSQL
uses row locks (``FOR UPDATE``, ``SKIP LOCKED`` for the batch runs).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlmodel import Session

from states import prepared
from states.errors import BadInput, Conflict, ConumError
from states.paths import MIGRATIONS

#: SQLSTATEs of a transaction the database rolled back to let a concurrent one finish: retrying it is safe.
_CONFLICTS = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure


#: What a row of each table is, for the refusal of a duplicate.
_ROWS = {
    "application": "an application",
    "structure": "a structure",
    "candidate": "a candidate",
    "training_org": "a training organisation",
    "recruitment_case": "a case",
    "tranche": "a tranche",
    "history_note": "a note of the history",
}


def duplicate(exc: IntegrityError) -> str | None:
    """Say, in one line, what already exists when ``exc`` is a unique-constraint violation; else None."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "23505":  # PostgreSQL: unique_violation
        diag = getattr(orig, "diag", None)
        table = getattr(diag, "table_name", None) or "a row"
        found = re.search(r"Key \((.+?)\)=\((.*)\) already exists", getattr(diag, "message_detail", None) or "")
        key = f" with {found.group(1)} {found.group(2)}" if found else ""
    else:
        found = re.match(r"UNIQUE constraint failed: (\w+)\.([\w., ]+)", str(orig))  # SQLite
        if found is None:
            return None
        table = found.group(1)
        key = " with the same " + ", ".join(c.rpartition(".")[2] for c in found.group(2).split(", "))
    return f"{_ROWS.get(table, f'a row of {table}')}{key} already exists"


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        prepared.run_text(conn, f"BEGIN {mode}")


@lru_cache(maxsize=16)
def get_engine(url: str, pool_size: int = 5) -> Engine:
    """Return the (cached) engine for ``url``, keeping up to ``pool_size`` connections open."""
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 60}, pool_size=pool_size)
            _sqlite_setup(engine)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise BadInput(
            f"cannot use database URL '{url}' ({exc}): give a SQLAlchemy URL such as "
            "sqlite:///./conum.db or postgresql+psycopg://user@host:5432/db"
        ) from None
    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@lru_cache(maxsize=16)
def _write_bind(engine: Engine) -> Engine:
    """What a write transaction runs on: on SQLite, the engine whose BEGIN takes the write lock at once
    (built once per engine: building it costs more than a transition's statements)."""
    return engine.execution_options(sqlite_begin="IMMEDIATE") if is_sqlite(engine) else engine


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """Open one write transaction: commit on success, roll everything back on error."""
    bind = _write_bind(engine)
    with Session(bind, expire_on_commit=False) as session:
        try:
            with session.begin():
                yield session
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) in _CONFLICTS:  # PostgreSQL broke a deadlock, or SERIALIZABLE
                raise Conflict(
                    "another change of the same rows ran at the same time and the database stopped this one "
                    "(rule: conflict): nothing was changed; run it again"
                ) from None
            first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
            raise ConumError(f"database error ({first}): check the database is reachable and retry") from None
        except IntegrityError as exc:
            what = duplicate(exc)
            if what is None:
                raise
            raise Conflict(
                f"{what} (rule: conflict): it was recorded meanwhile, by another action or run; nothing was "
                "changed: look it up instead of adding it again"
            ) from None


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


def snapshot(engine: Engine) -> Connection:
    """Open a connection whose read transaction sees the database as it is now, until it is closed.

    Later commits by others stay invisible to it (SQLite WAL readers, PostgreSQL ``REPEATABLE READ``).
    Close it (which rolls it back) when done: on SQLite an open snapshot keeps the WAL from being reset.
    """
    conn = engine.connect()
    if not is_sqlite(engine):
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    conn.begin()
    conn.exec_driver_sql("SELECT count(*) FROM alembic_version")  # the first read fixes the snapshot
    return conn


@lru_cache(maxsize=1)
def revisions() -> tuple[frozenset[str], str]:
    """Return the schema revisions this version knows and the latest one (read from the revision files)."""
    known: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found = re.search(r'^revision = "(\w+)"', text, re.M)
        parent = re.search(r'^down_revision = "(\w+)"', text, re.M)
        if found:
            known.add(found.group(1))
        if parent:
            parents.add(parent.group(1))
    (head,) = known - parents
    return frozenset(known), head


def check_revision(engine: Engine, *, upgrading: bool = False) -> None:
    """Refuse a database migrated by a newer conum, or (unless ``upgrading``) one older than this conum."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return
        current = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    known, head = revisions()
    if current is not None and current not in known:
        raise ConumError(
            f"the database is at schema revision {current}, which this version of conum does not know "
            "(rule: schema): use the conum that migrated it, or restore a backup",
            rule="schema",
        )
    if not upgrading and current != head:
        raise ConumError(
            f"the database schema (revision {current}) is older than this version of conum (rule: schema): "
            "run `conum init` to upgrade it",
            rule="schema",
        )


def migrate(url: str) -> None:
    """Create or upgrade the schema to the latest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    check_revision(get_engine(url), upgrading=True)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["engine"] = get_engine(url)
    command.upgrade(cfg, "head")


def has_schema(engine: Engine) -> bool:
    return inspect(engine).has_table("recruitment_case")
