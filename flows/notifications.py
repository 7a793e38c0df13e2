"""``deliver-notifications``: drain the outbox.

Runs every five minutes and whenever an operator action emits a
``conum.case.*`` event (the deployment's trigger in ``prefect.yaml``). The work
is ``states.outbox.deliver``: each row is claimed before it is sent, so two
runs never send the same notification; a failure counts an attempt, keeps the
error on the outbox row (``last_error``) and retries it later with an
exponential backoff, up to ``CONUM_MAX_ATTEMPTS``, then the row is ``failed``.
The flow itself has no retries: the outbox is the retry mechanism.

Artifacts: ``deliver-notifications`` (what was sent) and
``deliver-notifications-problems`` (what was not, and when it is retried).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger

from flows.common import engine, instant, settings, table
from states.labels import when as when_cell
from states.labels import when_long
from states.outbox import DeliveryReport, deliver

#: How each channel is called in the tables.
CHANNELS = {"smtp": "courriel", "eml": "fichier .eml", "payment_order": "ordre de paiement"}


def sent_rows(report: DeliveryReport) -> list[dict[str, Any]]:
    """The notifications sent, as an agent reads them: French headers, no codes."""
    return [
        {
            "envoi": s.outbox_id,
            "dossier": s.case_id or "—",
            "destinataire": s.recipient,
            "à": s.to,
            "objet": s.subject,
            "canal": CHANNELS.get(s.channel, s.channel),
        }
        for s in report.deliveries
    ]


@flow(name="deliver-notifications", retries=0, persist_result=False)
def deliver_notifications(at: datetime | None = None, limit: int | None = None) -> dict[str, int]:
    """Send the notifications and payment orders due; return the counts.

    Args:
        at: The instant of the delivery (default now): rows due on or before it are sent.
        limit: At most this many outbox rows in this run (default: every row due).
    """
    logger = get_run_logger()
    when = instant(at)
    report = deliver(engine(), when, settings(), limit=limit)
    table("deliver-notifications", sent_rows(report), f"Envois du {when_long(when)}")
    problems = [
        {
            "envoi": p.outbox_id,
            "dossier": p.case_id or "—",
            "destinataire": p.recipient,
            "essais": p.attempts,
            "suite": "abandonné" if p.gave_up else f"nouvel essai le {when_cell(p.next_attempt_at)}",
            "erreur": p.error,
        }
        for p in report.problems
    ]
    table("deliver-notifications-problems", problems, f"Envois en échec le {when_long(when)}")
    for p in report.problems:
        log = logger.error if p.gave_up else logger.warning
        log("outbox row %s (%s to %s) not delivered: %s", p.outbox_id, p.kind, p.recipient, p.error)
    logger.info("%s sent, %s to retry, %s failed", report.sent, report.retried, report.failed)
    return report.counts()
