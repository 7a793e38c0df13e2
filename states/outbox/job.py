"""One outbox row's delivery: the job prepared from the claimed row, and what came of it.

A ``Job`` holds what is sent (address, subject and body, or a payment order) or the ``DeliveryError``
that stopped it; ``permanent`` errors fail the row at once, the others are retried. A delivery's
``DeliveryReport`` lists what was sent (``Sent``) and what was not (``Problem``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from states.errors import ConumError
from states.outbox.payment import PaymentOrder


class DeliveryError(ConumError):
    """A notification could not be delivered; ``permanent`` when retrying cannot help."""

    rule = "delivery"

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass
class Job:
    """A claimed row, prepared after the claim and sent outside any write transaction."""

    id: int
    case_id: int | None
    kind: str
    recipient: str
    attempts: int
    to: str = ""
    name: str = ""  # shown beside the address: the structure, the person, the organisation
    subject: str = ""
    body: str = ""
    order: PaymentOrder | None = None
    error: DeliveryError | None = None


@dataclass
class Sent:
    """One notification delivered: where it went (address or file name) and what it said."""

    outbox_id: int
    case_id: int | None
    kind: str
    recipient: str
    to: str  # e-mail address, or the payment order's file name
    subject: str  # mail subject, or the payment reference
    channel: str  # smtp | eml | payment_order


@dataclass
class Problem:
    """One notification not delivered this time; ``gave_up`` when the row is now ``failed``."""

    outbox_id: int
    case_id: int | None
    kind: str
    recipient: str
    error: str
    attempts: int
    gave_up: bool
    next_attempt_at: datetime | None


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    deliveries: list[Sent] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"sent": self.sent, "retried": self.retried, "failed": self.failed}

    def table(self) -> list[dict[str, Any]]:
        """Return one plain dict per notification sent (for a table artifact or ``--json``)."""
        return [
            {
                "outbox": s.outbox_id,
                "case": s.case_id,
                "kind": s.kind,
                "recipient": s.recipient,
                "to": s.to,
                "subject": s.subject,
                "channel": s.channel,
            }
            for s in self.deliveries
        ]


__all__ = ["DeliveryError", "DeliveryReport", "Job", "Problem", "Sent"]
