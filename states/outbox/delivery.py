"""Delivering the outbox: claim a chunk of due rows, prepare them, attempt each, record the results.

``deliver`` runs that round until nothing is due. Rows go through ``pending → sending → sent``, or back to
``pending`` with a backoff, or to ``failed``. Preparing (reading the facts, rendering the mails) and
sending happen outside any write transaction, so that neither a slow mail server nor the templates hold up
the transitions; the results are recorded in short write transactions (at least every ``RECORD_EVERY``
seconds while a slow chunk is sent), each only if the row is still this deliverer's claim (still
``sending``, with the attempt count it claimed).

Failures. An SMTP refusal, a connection error or an unwritable folder counts an attempt, stores
``last_error`` and retries after ``RETRY_BASE × 2^(attempts - 1)`` (capped at ``RETRY_CAP``); after
``settings.max_attempts`` attempts the row becomes ``failed`` and stays in the table. A notification that
no retry can fix (no e-mail address for the recipient, no template for the kind) goes ``failed`` at once
with the reason; ``requeue`` puts failed rows back once an operator has fixed the cause. One row's failure
never stops the others. ``attempts`` counts the tries made, including the one that succeeded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import jinja2
from sqlalchemy import Connection, Engine, bindparam, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from states.clock import utc
from states.config import Settings
from states.db import is_sqlite, write_session
from states.errors import BadInput
from states.models import Outbox
from states.outbox.claim import IN_LIST, OUTBOX, OutboxRow, claim
from states.outbox.facts import Facts, read_address, read_context, read_name, read_payment_order
from states.outbox.job import DeliveryError, DeliveryReport, Job, Problem, Sent
from states.outbox.payment import PAYMENT_KIND
from states.outbox.render import UnknownKind, mail_kinds, render
from states.outbox.transports import Smtp, send

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=6)


def backoff(attempts: int) -> timedelta:
    """Return the wait before the next try after ``attempts`` tries: 1, 2, 4, 8… minutes, capped."""
    exponent = max(0, min(attempts - 1, 30))
    return min(RETRY_BASE * (2**exponent), RETRY_CAP)


def _prepare(facts: Facts, row: OutboxRow, attempts: int, settings: Settings) -> Job:
    job = Job(row.id or 0, row.case_id, row.kind, row.recipient, attempts)
    try:
        if row.recipient == "payment":
            if row.kind != PAYMENT_KIND:
                raise DeliveryError(f"outbox row {row.id}: recipient 'payment' takes only {PAYMENT_KIND} rows", True)
            job.order = read_payment_order(facts, row)
            return job
        job.to = read_address(facts, row, settings)
        job.name = read_name(facts, row)
        job.subject, job.body = render(row.kind, read_context(facts, row))
    except DeliveryError as exc:
        job.error = exc
    except UnknownKind as exc:
        job.error = DeliveryError(str(exc), permanent=True)
    except jinja2.TemplateError as exc:
        job.error = DeliveryError(
            f"template templates/mail/{row.kind}.j2 failed on outbox row {row.id} ({exc}): fix the template, "
            "then requeue the row",
            permanent=True,
        )
    except SQLAlchemyError:
        raise
    except Exception as exc:  # one malformed row must not stop the others
        logger.exception("outbox row %s could not be prepared", row.id)
        job.error = DeliveryError(
            f"outbox row {row.id} could not be prepared ({type(exc).__name__}: {exc}): fix it, then requeue it",
            permanent=True,
        )
    return job


#: Records one row's failed try, only if the row is still this deliverer's claim (compare and set).
_SET_FAILURE = (
    update(OUTBOX)
    .where(
        OUTBOX.c.id == bindparam("b_id"),
        OUTBOX.c.status == "sending",
        OUTBOX.c.attempts == bindparam("b_attempts"),
    )
    .values(status=bindparam("b_status"), next_attempt_at=bindparam("b_next"), last_error=bindparam("b_error"))
)
#: Write the results at least this often while a chunk is being sent (a slow SMTP server delays the rest).
RECORD_EVERY = 5.0  # seconds


def prepare(bind: Engine | Connection, taken: list[tuple[OutboxRow, int]], settings: Settings) -> list[Job]:
    """Render the claimed rows' mails and payment orders, reading what they need through ``bind``.

    Outside the claim's write transaction: rendering never holds the lock. ``bind`` is the engine (the
    database as it is now, in one read transaction) or a connection in an open transaction (a snapshot).
    """
    if not taken:
        return []
    with Session(bind, expire_on_commit=False) as reader:
        facts = Facts(reader)
        facts.load(row for row, _ in taken)
        return [_prepare(facts, row, attempts, settings) for row, attempts in taken]


def attempt(job: Job, settings: Settings, smtp: Smtp | None, at: datetime) -> Sent | None:
    """Send one prepared job; on failure return None and leave the reason in ``job.error``."""
    if job.error is not None:
        return None
    try:
        return send(job, settings, smtp, at)
    except DeliveryError as exc:
        job.error = exc
    except Exception as exc:  # one row's surprise must not stop the others: retried like any error
        logger.exception("outbox row %s: unexpected error while sending", job.id)
        job.error = DeliveryError(f"unexpected error while sending ({type(exc).__name__}: {exc})")
    return None


def record(
    engine: Engine,
    results: list[tuple[Job, Sent | None]],
    at: datetime,
    settings: Settings,
    report: DeliveryReport,
) -> None:
    """Record the results of sent jobs in one transaction, each only if its row is still this deliverer's claim."""
    if not results:
        return
    ids = [job.id for job, _ in results]
    with write_session(engine) as session:
        conn = session.connection()
        claimed: dict[int, int] = {}  # id → attempts, of the rows still 'sending'
        for start in range(0, len(ids), IN_LIST):
            q = select(OUTBOX.c.id, OUTBOX.c.attempts).where(
                OUTBOX.c.id.in_(ids[start : start + IN_LIST]), OUTBOX.c.status == "sending"
            )
            if not is_sqlite(engine):  # on SQLite the write transaction already excludes other writers
                q = q.with_for_update()
            claimed.update((i, a) for i, a in conn.execute(q).all())
        mine = [(job, sent) for job, sent in results if claimed.get(job.id) == job.attempts]
        sent_ids = [job.id for job, sent in mine if sent is not None]
        for start in range(0, len(sent_ids), IN_LIST):
            conn.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_(sent_ids[start : start + IN_LIST]))
                .values(status="sent", sent_at=at, last_error=None)
            )
        problems: list[Problem] = []
        failures: list[dict[str, Any]] = []
        for job, sent in mine:
            if sent is not None:
                continue
            assert job.error is not None
            gave_up = job.error.permanent or job.attempts >= settings.max_attempts
            retry_at = None if gave_up else at + backoff(job.attempts)
            status = "failed" if gave_up else "pending"
            failures.append(
                {"b_id": job.id, "b_attempts": job.attempts, "b_status": status, "b_next": retry_at or at}
                | {"b_error": str(job.error)}
            )
            problems.append(
                Problem(job.id, job.case_id, job.kind, job.recipient, str(job.error), job.attempts, gave_up, retry_at)
            )
        if failures:
            conn.execute(_SET_FAILURE, failures)
    recorded = {job.id for job, _ in mine}
    problem = iter(problems)
    for job, sent in results:
        if job.id not in recorded:
            logger.warning("outbox row %s was claimed again by another deliverer; result not recorded", job.id)
        elif sent is not None:
            report.sent += 1
            report.deliveries.append(sent)
        else:
            p = next(problem)
            logger.warning("outbox row %s (%s to %s) not delivered: %s", job.id, job.kind, job.recipient, job.error)
            report.problems.append(p)
            if p.gave_up:
                report.failed += 1
            else:
                report.retried += 1


def _check_kinds(kinds: Iterable[str] | None) -> list[str] | None:
    if kinds is None:
        return None
    chosen = list(dict.fromkeys(kinds))
    known = (*mail_kinds(), PAYMENT_KIND)
    unknown = [k for k in chosen if k not in known]
    if unknown or not chosen:
        raise BadInput(
            f"unknown notification kind(s) {', '.join(unknown) or '(none given)'}: choose among {', '.join(known)}"
        )
    return chosen


def deliver(
    engine: Engine,
    at: datetime,
    settings: Settings,
    *,
    kinds: Iterable[str] | None = None,
    limit: int | None = None,
    chunk: int = 500,
    progress: Callable[[int], None] | None = None,
    facts: Connection | None = None,
) -> DeliveryReport:
    """Send the outbox rows due at ``at`` (all kinds, or only ``kinds``; at most ``limit`` rows), each once.

    The notifications read the cases, people and tranches as they are just after each claim, or, with
    ``facts``, as that connection's open transaction sees them (a snapshot: see ``states.db.snapshot``).

    E-mails go over SMTP when ``settings.smtp_host`` is set, else into ``settings.mail_dir`` as ``.eml``
    files; payment orders go into ``settings.payment_dir``. ``progress`` is called after each chunk with the
    number of rows sent so far.
    """
    at = utc(at)
    chosen = _check_kinds(kinds)
    if limit is not None and limit < 1:
        raise BadInput(f"limit must be at least 1, got {limit}: give a positive number of rows or none")
    if chunk < 1:
        raise BadInput(f"chunk must be at least 1, got {chunk}")
    if settings.max_attempts < 1:
        raise BadInput(f"max_attempts must be at least 1, got {settings.max_attempts}: set CONUM_MAX_ATTEMPTS")
    report = DeliveryReport()
    smtp = Smtp(settings) if settings.smtp_host else None
    done = 0
    try:
        while limit is None or done < limit:
            taken = claim(engine, at, settings, chunk if limit is None else min(chunk, limit - done), chosen, report)
            if not taken:
                break
            done += len(taken)
            results: list[tuple[Job, Sent | None]] = []
            recorded_at = time.monotonic()
            for job in prepare(facts if facts is not None else engine, taken, settings):
                results.append((job, attempt(job, settings, smtp, at)))
                if time.monotonic() - recorded_at >= RECORD_EVERY:
                    record(engine, results, at, settings, report)
                    results, recorded_at = [], time.monotonic()
            record(engine, results, at, settings, report)
            if smtp is not None:
                smtp.close()
            if progress:
                progress(report.sent)
    finally:
        if smtp is not None:
            smtp.close()
    return report


def requeue(
    engine: Engine, at: datetime, *, ids: Iterable[int] | None = None, kinds: Iterable[str] | None = None
) -> int:
    """Put ``failed`` rows (all, or those of ``ids`` / ``kinds``) back to pending, due at ``at``; return how many."""
    at = utc(at)
    chosen = _check_kinds(kinds)
    with write_session(engine) as session:
        q = select(Outbox).where(Outbox.status == "failed")
        if ids is not None:
            q = q.where(col(Outbox.id).in_(list(ids)))
        if chosen is not None:
            q = q.where(col(Outbox.kind).in_(chosen))
        rows = session.exec(q).all()
        for row in rows:
            row.status, row.attempts, row.next_attempt_at = "pending", 0, at
            session.add(row)
        return len(rows)


__all__ = [
    "RECORD_EVERY",
    "RETRY_BASE",
    "RETRY_CAP",
    "attempt",
    "backoff",
    "deliver",
    "prepare",
    "record",
    "requeue",
]
