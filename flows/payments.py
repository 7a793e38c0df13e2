"""``pay-tranches``: pay every tranche due, then write their payment orders.

``states.batch.pay`` marks each tranche due as paid, once, whatever the
retries or overlapping runs, and puts a payment order in the outbox in the same
transaction; ``states.outbox.deliver`` then writes each order as a JSON file
into ``CONUM_PAYMENT_DIR`` (one file per tranche, never overwritten). An order
that cannot be written stays in the outbox and is retried by the next run or
by ``deliver-notifications``.

Artifacts: ``pay-tranches`` (payments by structure, with totals) and
``pay-tranches-orders`` (the payment order files written).
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger

from flows.common import engine, fail_if_held, instant, policy, settings, table
from flows.notifications import sent_rows
from states import batch
from states.dashboard import payments_by_structure
from states.db import read_session
from states.labels import when_long
from states.outbox import PAYMENT_KIND, deliver


@flow(name="pay-tranches", retries=0, persist_result=False)
def pay_tranches(at: datetime | None = None, chunk: int = 500) -> dict[str, int]:
    """Pay every tranche due and write the payment orders; return the counts.

    Args:
        at: The instant of the payment run (default now): every tranche due on or before its day is paid.
        chunk: Cases per transaction.
    """
    logger = get_run_logger()
    when = instant(at)
    eng = engine()
    report = batch.pay(eng, when, policy(), chunk=chunk)
    with read_session(eng) as session:
        rows = payments_by_structure(session, [(p.structure_id, p.amount_cents) for p in report.payments])
    table("pay-tranches", rows, f"Tranches versées le {when_long(when)}, par structure")
    orders = deliver(eng, when, settings(), kinds=[PAYMENT_KIND])
    table("pay-tranches-orders", sent_rows(orders), f"Ordres de paiement écrits le {when_long(when)}")
    for case, why in report.failures.items():
        logger.warning("case %s not paid: %s", case, why)
    for problem in orders.problems:
        logger.warning("payment order of case %s not written: %s", problem.case_id, problem.error)
    logger.info(
        "%s tranche(s) paid (%s cents), %s payment order(s) written, %s to retry, %s failed",
        report.paid,
        report.amount_cents,
        orders.sent,
        orders.retried,
        orders.failed,
    )
    fail_if_held(report.held, "le paiement des tranches")
    return {
        "paid": report.paid,
        "amount_cents": report.amount_cents,
        "skipped": len(report.failures),
        "orders_written": orders.sent,
        "orders_retried": orders.retried,
        "orders_failed": orders.failed,
    }
