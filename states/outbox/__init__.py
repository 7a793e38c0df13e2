"""The outbox: notifications and payment orders written with the transition, delivered after it commits.

The transition service writes one ``Outbox`` row per notification in the transaction of the transition, so
a notification exists if and only if its transition happened. Delivery runs afterwards, in its own short
transactions: ``deliver`` claims due rows (``claim``), reads the facts and renders them (``prepare``),
sends each (``attempt``) and records the results (``record``). Each row is delivered once in the normal
case and at least once when a deliverer stops mid-way; the repeats are harmless: a mail keeps its
``Message-ID``, an ``.eml`` file or a payment order keeps its name, and a payment order file is never
written twice.

Modules: ``render`` (French formats, templates), ``claim`` (the claim and its lease), ``facts`` (what a
notification reads), ``payment`` (payment orders), ``transports`` (SMTP, files), ``delivery`` (the rounds,
retries, ``requeue``), ``process`` (the simulation's delivery process; not imported here).
"""

from __future__ import annotations

from states.outbox.claim import SENDING_LEASE, OutboxRow, claim
from states.outbox.delivery import attempt, backoff, deliver, prepare, record, requeue
from states.outbox.facts import build_context, build_payment_order, recipient_address
from states.outbox.job import DeliveryError, DeliveryReport, Problem, Sent
from states.outbox.payment import PAYMENT_KIND, PaymentOrder, payment_order_name, payment_reference
from states.outbox.render import UnknownKind, mail_kinds, render

__all__ = [
    "PAYMENT_KIND",
    "SENDING_LEASE",
    "DeliveryError",
    "DeliveryReport",
    "OutboxRow",
    "PaymentOrder",
    "Problem",
    "Sent",
    "UnknownKind",
    "attempt",
    "backoff",
    "build_context",
    "build_payment_order",
    "claim",
    "deliver",
    "mail_kinds",
    "payment_order_name",
    "payment_reference",
    "prepare",
    "recipient_address",
    "record",
    "render",
    "requeue",
]
