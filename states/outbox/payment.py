"""Payment orders: the outbox rows of kind ``payment_order`` become JSON files, not mails.

One file per tranche, named after the case and the tranche (``payment_order_name``) so that a retried
delivery finds the file it already wrote; the format is documented in docs/payment-orders.md.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel

#: The kind whose rows are payment orders (recipient ``payment``), written as files, not mailed.
PAYMENT_KIND = "payment_order"


class StructureRef(BaseModel):
    id: int
    name: str
    kind: str
    departement: str


class PaymentOrder(BaseModel):
    """One payment order file: one tranche of one case (documented in docs/payment-orders.md)."""

    format: Literal["conum.payment-order/1"] = "conum.payment-order/1"
    reference: str
    case_id: int
    tranche_id: int
    tranche_number: int
    final: bool
    amount_cents: int
    currency: Literal["EUR"] = "EUR"
    due_on: date | None
    paid_at: datetime
    subsidy_cents: int | None
    structure: StructureRef
    outbox_id: int


def payment_reference(case_id: int, tranche_number: int) -> str:
    """Return the stable reference of a tranche's payment, shown in the mail and the payment order."""
    return f"CNUM-{case_id:06d}-T{tranche_number}"


def payment_order_name(case_id: int, tranche_number: int) -> str:
    """Return the file name of a tranche's payment order: one name per tranche, whatever the retries."""
    return f"payment-order-case{case_id}-tranche{tranche_number}.json"


__all__ = ["PAYMENT_KIND", "PaymentOrder", "StructureRef", "payment_order_name", "payment_reference"]
