"""The process under test: it runs ``conum`` commands in-process, one JSON line at a time.

``python -m reliability.worker`` reads requests on stdin and answers one JSON line each on stdout:

- ``{"argv": [...]}`` runs the ``conum`` entry point (``run``, what the ``conum`` script runs) with
  these arguments, its output captured; the answer holds the exit code, stdout, stderr and, if an
  exception escaped the command, its traceback;
- ``{"deliver": "ISO instant"}`` runs the delivery of the outbox (``states.outbox.deliver``, what the
  ``deliver-notifications`` deployment runs) on ``CONUM_DATABASE_URL``;
- ``"go_at"`` (a Unix time) makes it wait until then before running, so that two workers start a race
  at the same moment;
- ``"fault"`` (``{"kind": "drop" | "lock" | "commit", "at": n}``) injects one database fault at the n-th
  statement (the n-th commit for ``commit``) of the request. Only when ``CONUM_FAULTS=1`` is set in
  this process's environment: this entry point is the only place that reads it, and the production
  code has no hook of its own; the faults are SQLAlchemy event listeners installed here.

The faults:

- ``drop``: the connection is lost under the statement (PostgreSQL: the server ends the session with
  ``pg_terminate_backend``; SQLite: the driver's connection is closed), a real driver error follows;
- ``lock``: the statement fails as the driver reports a lock time-out (psycopg ``LockNotAvailable``,
  SQLSTATE 55P03; sqlite3 ``database is locked``), raised in place of the statement;
- ``commit``: the connection is lost just before the commit (as ``drop``), so the commit fails for real.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Outcome:
    code: int
    out: str = ""
    err: str = ""
    traceback: str | None = None
    fired: bool = False
    statements: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


_built: dict[int, Any] = {}


def _build_once() -> None:
    """Typer builds the whole click command from the functions' signatures at each call (about a third
    of a second here); a process that runs many commands builds it once. The command is the same."""
    import typer.main

    if _built.get(-1):
        return
    _built[-1] = True
    build = typer.main.get_command

    def cached(app: Any) -> Any:
        if id(app) not in _built:
            _built[id(app)] = build(app)
        return _built[id(app)]

    typer.main.get_command = cached  # type: ignore[assignment]


def invoke(argv: list[str]) -> Outcome:
    """Run the ``conum`` entry point in this process with ``argv``; capture what it prints."""
    from flows.cli import run

    _build_once()

    out, err = io.StringIO(), io.StringIO()
    code, tb = 0, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run(argv)
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        except BaseException:
            tb = traceback.format_exc()
            code = -1
    return Outcome(code, out.getvalue(), err.getvalue(), tb)


def deliver(at: str) -> Outcome:
    """Drain the outbox as the delivery deployment does; a refusal is one line, as the CLI makes it."""
    from states.clock import parse_instant
    from states.config import settings
    from states.db import get_engine
    from states.errors import ConumError
    from states.outbox import deliver as run

    try:
        report = run(get_engine(settings().database_url), parse_instant(at), settings())
    except ConumError as exc:
        return Outcome(1, err=f"refused: {exc}\n")
    except Exception as exc:
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            return Outcome(1, err=f"database error: {getattr(exc, 'orig', exc)}\n".replace("\n", " ").strip() + "\n")
        return Outcome(-1, traceback=traceback.format_exc())
    return Outcome(0, out=json.dumps(report.counts()) + "\n")


class Injector:
    """One database fault, armed for the next request (installed only with ``CONUM_FAULTS=1``)."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.at = 0
        self.count = 0
        self.fired = False

    def arm(self, fault: dict[str, Any] | None) -> None:
        self.kind = fault["kind"] if fault else None
        self.at = int(fault["at"]) if fault else 0
        self.count = 0
        self.fired = False

    def install(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", self._statement)
        event.listen(Engine, "commit", self._commit)

    def _statement(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        self.count += 1
        if self.kind in ("drop", "lock") and self.count == self.at and not self.fired:
            self.fired = True
            if self.kind == "drop":
                _lose(conn)
            else:
                raise _lock_timeout(conn)

    def _commit(self, conn: Any) -> None:
        if self.kind == "commit" and not self.fired:
            self.at -= 1
            if self.at <= 0:
                self.fired = True
                _lose(conn)


def _lose(conn: Any) -> None:
    """Lose the connection under SQLAlchemy, for real."""
    raw = conn.connection.dbapi_connection
    if conn.dialect.name == "sqlite":
        raw.close()
        return
    import psycopg

    from reliability.backends import PG_URL, libpq

    pid = raw.info.backend_pid
    with psycopg.connect(libpq(PG_URL), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.01)


def _lock_timeout(conn: Any) -> Exception:
    if conn.dialect.name == "sqlite":
        import sqlite3

        return sqlite3.OperationalError("database is locked")
    import psycopg.errors

    return psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")


def main() -> None:
    injector = Injector()
    if os.environ.get("CONUM_FAULTS") == "1":
        injector.install()
    answers = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        injector.arm(request.get("fault"))
        if request.get("go_at"):
            time.sleep(max(0.0, float(request["go_at"]) - time.time()))
        if "ping" in request:  # warm up: import what the commands need, then say so
            import states.outbox  # noqa: F401

            outcome = Outcome(0)
        elif "deliver" in request:
            outcome = deliver(request["deliver"])
        else:
            outcome = invoke(request["argv"])
        outcome.fired, outcome.statements = injector.fired, injector.count
        injector.arm(None)
        answers.write(json.dumps(asdict(outcome)) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
