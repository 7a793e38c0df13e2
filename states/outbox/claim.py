"""Claiming outbox rows: ``pending → sending``, under a lease, never the same row by two deliverers.

A short write transaction claims a chunk of due rows: on SQLite write transactions serialise (``BEGIN
IMMEDIATE``), on PostgreSQL the rows are locked with ``FOR UPDATE SKIP LOCKED``. The claim sets ``status =
'sending'``, counts the attempt and moves ``next_attempt_at`` to the end of a lease (``SENDING_LEASE`` after
``at``). A row still ``sending`` once its lease has passed was claimed by a deliverer that stopped before
recording the result: it is claimed again (at least once), or fails when it has used its attempts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol, cast

from sqlalchemy import Engine, Table, bindparam, update

from states.config import Settings
from states.db import is_sqlite, write_session
from states.models import Outbox
from states.outbox.job import DeliveryReport, Problem

SENDING_LEASE = timedelta(minutes=15)
IN_LIST = 500  # ids per IN (...) list


class OutboxRow(Protocol):
    """What delivering reads of an outbox row: an ``Outbox`` object, or a row as the claim reads it."""

    @property
    def id(self) -> int | None: ...
    @property
    def case_id(self) -> int | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def recipient(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...


OUTBOX: Table = Outbox.__table__  # type: ignore[attr-defined]
#: Sets one claimed row (executed for the whole chunk at once).
_SET_ROW = (
    update(OUTBOX)
    .where(OUTBOX.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
        last_error=bindparam("b_error"),
    )
)


def claim(
    engine: Engine,
    at: datetime,
    settings: Settings,
    n: int,
    kinds: list[str] | None,
    report: DeliveryReport,
    lease: timedelta = SENDING_LEASE,
) -> list[tuple[OutboxRow, int]]:
    """Claim up to ``n`` rows due at ``at`` in one short write transaction; return them with their attempt.

    A claimed row is ``sending`` until ``record`` writes its result, or until ``lease`` has passed: then
    it is due again (its deliverer is taken to have stopped).
    """
    taken: list[tuple[OutboxRow, int]] = []
    with write_session(engine) as session:
        conn = session.connection()
        params: dict[str, Any] = {"b_at": at, "b_n": n}
        if kinds is not None:
            params["b_kinds"] = kinds
        rows = conn.execute(_due_rows(kinds is not None, not is_sqlite(engine)), params).all()
        claims: list[dict[str, Any]] = []
        for row in rows:  # plain rows (no ORM objects to build); the claim is written for all in one statement
            last_error = row.last_error
            if row.status == "sending":  # its deliverer stopped before recording the result
                interrupted = (
                    f"an earlier delivery of this row was interrupted after attempt {row.attempts} "
                    "(it may have been sent)"
                )
                if row.attempts >= settings.max_attempts:
                    claims.append(
                        {"b_id": row.id, "b_status": "failed", "b_attempts": row.attempts, "b_next": at}
                        | {"b_error": interrupted}
                    )
                    report.failed += 1
                    report.problems.append(
                        Problem(
                            row.id or 0, row.case_id, row.kind, row.recipient, interrupted, row.attempts, True, None
                        )
                    )
                    continue
                last_error = interrupted
            claims.append(
                {"b_id": row.id, "b_status": "sending", "b_attempts": row.attempts + 1, "b_next": at + lease}
                | {"b_error": last_error}
            )
            taken.append((cast(OutboxRow, row), row.attempts + 1))
        if claims:
            conn.execute(_SET_ROW, claims)
    return taken


@lru_cache(maxsize=4)
def _due_rows(by_kind: bool, lock: bool) -> Any:
    """The statement that reads the rows due at ``b_at``, at most ``b_n``, oldest first (built once)."""
    q = (
        OUTBOX.select()
        .where(OUTBOX.c.status.in_(("pending", "sending")), OUTBOX.c.next_attempt_at <= bindparam("b_at"))
        .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id)
        .limit(bindparam("b_n"))
    )
    if by_kind:
        q = q.where(OUTBOX.c.kind.in_(bindparam("b_kinds", expanding=True)))
    if lock:
        q = q.with_for_update(skip_locked=True)
    return q


__all__ = ["IN_LIST", "OUTBOX", "SENDING_LEASE", "OutboxRow", "claim"]
