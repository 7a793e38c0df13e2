"""Delivering the outbox: French e-mails over SMTP or into ``.eml`` files, payment orders as JSON files.

The transition service writes one ``Outbox`` row per notification in the
transaction of the transition; ``deliver`` sends them afterwards.

Claiming. Rows go through ``pending → sending → sent`` (or back to
``pending`` with a backoff, or to ``failed``). A short write transaction
claims a chunk of due rows: on SQLite write transactions serialise
(``BEGIN IMMEDIATE``), on PostgreSQL the rows are locked with ``FOR UPDATE
SKIP LOCKED``; either way two deliverers never claim the same row. The claim
sets ``status = 'sending'``, counts the attempt and moves ``next_attempt_at``
to the end of a lease (``SENDING_LEASE`` after ``at``). The rows the chunk's
notifications read (cases, structures, people, tranches) are fetched just
after, in one read transaction, a few queries for the whole chunk; rendering
and sending happen outside the write lock, so that neither a slow mail
server nor the templates hold up the transitions; the chunk's results are then recorded in one
short write transaction (at least every ``RECORD_EVERY`` seconds while a slow
chunk is sent), each row's result only if the row is still this deliverer's
claim (still ``sending``, with the attempt count it claimed).

At-least-once. A deliverer that stops between sending rows and recording them
leaves the rows ``sending``; once their lease has passed, the next ``deliver``
claims them again and sends them again. A duplicate e-mail (rare: it needs a crash
in that window) is the price of never losing a time-out or a convocation; each
mail carries a stable ``Message-ID`` (``<conum-outbox-<id>…>``) so that a
duplicate can be recognised. ``.eml`` files and payment orders have names
derived from the row or the tranche, so a repeated attempt never makes a
second file: a payment order is created atomically and never overwritten
(see docs/payment-orders.md).

Failures. An SMTP refusal, a connection error or an unwritable folder counts
an attempt, stores ``last_error`` and retries after ``RETRY_BASE × 2^(attempts
- 1)`` (capped at ``RETRY_CAP``); after ``settings.max_attempts`` attempts the
row becomes ``failed`` and stays in the table. A notification that no retry
can fix (no e-mail address for the recipient, no template for the kind) goes
``failed`` at once with the reason; ``requeue`` puts failed rows back once an
operator has fixed the cause. One row's failure never stops the others.

``attempts`` counts the tries made, including the one that succeeded.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.utils import format_datetime, formataddr, getaddresses, parseaddr
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast

import jinja2
from pydantic import BaseModel
from sqlalchemy import Connection, Engine, Table, bindparam, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel, col, select

from states.clock import PARIS, paris_day, utc
from states.config import Settings
from states.db import is_sqlite, write_session
from states.errors import BadInput, ConumError
from states.lifecycle import LABELS, State
from states.models import Candidate, Case, History, Outbox, Structure, TrainingOrg, Tranche

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

_M = TypeVar("_M", bound=SQLModel)


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


TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "mail"
#: The kind whose rows are payment orders (recipient ``payment``), written as files, not mailed.
PAYMENT_KIND = "payment_order"
SENDING_LEASE = timedelta(minutes=15)
RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=6)
SMTP_TIMEOUT = 30  # seconds, per SMTP operation

NBSP = "\u00a0"
MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
CONTRACT_TYPES = {"CDI": "CDI", "CDD": "CDD", "PEC": "contrat PEC", "contrat_de_projet": "contrat de projet"}
RUPTURE_REASONS = {
    "licenciement": "licenciement",
    "demission": "démission",
    "non_reconduction_cdd": "non-reconduction du CDD",
    "fin_de_subventionnement": "fin de subventionnement",
}


class DeliveryError(ConumError):
    """A notification could not be delivered; ``permanent`` when retrying cannot help."""

    rule = "delivery"

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class UnknownKind(BadInput):
    """No mail template exists for a notification kind."""


# ---------------------------------------------------------------- French formats


def euros(cents: int) -> str:
    """Format integer cents the French way: ``1250000`` → ``12 500,00 €`` (no-break spaces)."""
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise TypeError(f"an amount must be integer cents, got {cents!r}")
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{units:,}".replace(",", NBSP) + f",{rest:02d}{NBSP}€"


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return paris_day(value)
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) == 10:
        return date.fromisoformat(value)
    if isinstance(value, str):
        return paris_day(datetime.fromisoformat(value))
    raise TypeError(f"expected a date, a date-time or an ISO 8601 text, got {value!r}")


def french_day(value: date | datetime | str) -> str:
    """Format a day the French way: ``16 mars 2026``, ``1er avril 2026`` (instants are read in Paris time)."""
    day = _as_date(value)
    number = "1er" if day.day == 1 else str(day.day)
    return f"{number} {MONTHS[day.month - 1]} {day.year}"


def french_instant(value: datetime | str) -> str:
    """Format an instant in Paris time: ``16 mars 2026 à 10 h 00``."""
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(instant, datetime):
        raise TypeError(f"expected a date-time or an ISO 8601 text, got {value!r}")
    local = utc(instant).astimezone(PARIS)
    return f"{french_day(local.date())} à {local.hour} h {local.minute:02d}"


def _contract_type(code: str) -> str:
    return CONTRACT_TYPES.get(code, code)


def _reason(code: str) -> str:
    return RUPTURE_REASONS.get(code, code)


# ---------------------------------------------------------------- templates


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain-text mails
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(
        euros=euros, day=french_day, instant=french_instant, contract_type=_contract_type, reason=_reason
    )
    return env


@lru_cache(maxsize=1)
def mail_kinds() -> tuple[str, ...]:
    """Return the notification kinds that have a mail template (``templates/mail/<kind>.j2``)."""
    return tuple(sorted(p.stem for p in TEMPLATES.glob("*.j2") if not p.name.startswith("_")))


@cache
def _template(kind: str) -> jinja2.Template:
    """Return the compiled template of ``kind``, checked once per process (templates ship with the code)."""
    kinds = mail_kinds()
    if kind not in kinds:
        raise UnknownKind(
            f"no mail template for notification kind '{kind}': known kinds are {', '.join(kinds)}; "
            f"add templates/mail/{kind}.j2 with a subject and a body block"
        )
    template = _env().get_template(f"{kind}.j2")
    missing = {"subject", "body"} - set(template.blocks)
    if missing:
        raise UnknownKind(
            f"template templates/mail/{kind}.j2 lacks the block(s) {', '.join(sorted(missing))}: "
            "define {% block subject %} and {% block body %}"
        )
    return template


_SPACES = re.compile(r"[ \t\r\n]+")


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):  # at most one blank line in a row
            out.append(line)
    return "\n".join(out) + "\n"


def render(kind: str, context: Mapping[str, Any]) -> tuple[str, str]:
    """Render the French subject (one line) and plain-text body of a notification of ``kind``.

    Raises ``UnknownKind`` when no template exists for ``kind``, and
    ``jinja2.UndefinedError`` when the context lacks a variable the template uses.
    """
    template = _template(kind)
    ctx = template.new_context(dict(context))
    subject = _SPACES.sub(" ", "".join(template.blocks["subject"](ctx))).strip()  # keeps no-break spaces
    body = _tidy("".join(template.blocks["body"](ctx)))
    return subject, body


# ---------------------------------------------------------------- reading the rows a notification needs

_IN_LIST = 500  # ids per IN (...) list


def _ids(values: Iterable[Any]) -> list[int]:
    """The distinct integer ids among ``values`` (anything else is left to the one-by-one reads)."""
    return sorted({v for v in values if isinstance(v, int) and not isinstance(v, bool)})


class _Facts:
    """The rows notifications read (cases, structures, people, tranches, histories), kept for a chunk.

    ``load`` fetches what a whole chunk of outbox rows needs in a few queries; anything not loaded is read
    on demand, one row at a time, and kept too.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.rows: dict[type[SQLModel], dict[Any, Any]] = {
            Case: {},
            Structure: {},
            Candidate: {},
            TrainingOrg: {},
            Tranche: {},
        }
        self.tranches: dict[int, list[Tranche]] = {}  # every tranche of a case
        self.time_outs: dict[int, str | None] = {}  # state left by the case's last time-out

    def get(self, model: type[_M], key: Any) -> _M | None:
        if key is None:
            return None
        store = self.rows[model]
        if key not in store:
            store[key] = self.session.get(model, key)
        found: _M | None = store[key]
        return found

    def case(self, row: OutboxRow) -> Case | None:
        return self.get(Case, row.case_id)

    def tranches_of(self, case_id: int) -> list[Tranche]:
        if case_id not in self.tranches:
            self.tranches[case_id] = list(self.session.exec(select(Tranche).where(Tranche.case_id == case_id)).all())
        return self.tranches[case_id]

    def time_out_from(self, case_id: int) -> str | None:
        if case_id not in self.time_outs:
            entry = self.session.exec(
                select(History.from_state)
                .where(History.case_id == case_id, History.event == "time_out")
                .order_by(col(History.id).desc())
            ).first()
            self.time_outs[case_id] = entry
        return self.time_outs[case_id]

    def _fetch(self, model: Any, ids: Iterable[Any]) -> None:
        store = self.rows[model]
        wanted = [i for i in _ids(ids) if i not in store]
        for start in range(0, len(wanted), _IN_LIST):
            part = wanted[start : start + _IN_LIST]
            for obj in self.session.exec(select(model).where(col(model.id).in_(part))).all():
                store[obj.id] = obj
            for key in part:
                store.setdefault(key, None)

    def load(self, rows: Iterable[OutboxRow]) -> None:
        """Read what ``rows`` need, table by table (the same facts the one-by-one reads would give)."""
        rows = list(rows)
        self._fetch(Tranche, (r.payload.get("tranche_id") for r in rows))
        paid = _ids(
            [t.case_id for t in self.rows[Tranche].values() if t is not None]
            + [r.case_id for r in rows if r.payload.get("tranche_number") is not None]
        )
        paid = [c for c in paid if c not in self.tranches]
        for start in range(0, len(paid), _IN_LIST):
            part = paid[start : start + _IN_LIST]
            for c in part:
                self.tranches[c] = []
            for tranche in self.session.exec(select(Tranche).where(col(Tranche.case_id).in_(part))).all():
                self.tranches[tranche.case_id].append(tranche)
                self.rows[Tranche][tranche.id] = tranche
        self._fetch(Case, [r.case_id for r in rows] + [t.case_id for t in self.rows[Tranche].values() if t])
        cases = {r.id: self.case(r) for r in rows}
        self._fetch(
            Structure,
            [c.structure_id if c is not None else r.payload.get("structure_id") for r in rows for c in [cases[r.id]]],
        )
        self._fetch(Candidate, [c.candidate_id for r in rows if r.recipient == "candidate" for c in [cases[r.id]] if c])
        self._fetch(TrainingOrg, [c.training_org_id for c in cases.values() if c is not None])
        timed_out = [c for c in _ids(r.case_id for r in rows if r.kind == "time_out") if c not in self.time_outs]
        for start in range(0, len(timed_out), _IN_LIST):
            part = timed_out[start : start + _IN_LIST]
            for c in part:
                self.time_outs[c] = None
            q = (
                select(History.case_id, History.from_state)
                .where(col(History.case_id).in_(part), History.event == "time_out")
                .order_by(col(History.id))
            )
            for case_id, from_state in self.session.exec(q).all():
                self.time_outs[case_id] = from_state  # the last one wins


def _structure(facts: _Facts, row: OutboxRow) -> Structure:
    case = facts.case(row)
    structure_id = case.structure_id if case is not None else row.payload.get("structure_id")
    structure = facts.get(Structure, structure_id)
    if structure is None:
        raise DeliveryError(f"outbox row {row.id}: structure {structure_id} does not exist", permanent=True)
    return structure


def recipient_address(session: Session, row: OutboxRow, settings: Settings) -> str:
    """Return the e-mail address of the row's recipient, read from the database at delivery time.

    Raises ``DeliveryError`` (permanent) when the recipient has no address, saying how to add one.
    """
    return _recipient_address(_Facts(session), row, settings)


def _recipient_address(facts: _Facts, row: OutboxRow, settings: Settings) -> str:
    role = row.recipient
    if role == "structure":
        structure = _structure(facts, row)
        if not structure.email:
            raise DeliveryError(
                f"structure {structure.id} ({structure.name}) has no e-mail address: add one to the structure, "
                f"then requeue outbox row {row.id}",
                permanent=True,
            )
        return structure.email
    if role == "candidate":
        case = facts.case(row)
        candidate = facts.get(Candidate, case.candidate_id) if case is not None else None
        if candidate is None or not candidate.email:
            raise DeliveryError(
                f"the candidate of case {row.case_id} has no e-mail address: add one, then requeue outbox row {row.id}",
                permanent=True,
            )
        return candidate.email
    if role == "training_org":
        case = facts.case(row)
        org = facts.get(TrainingOrg, case.training_org_id) if case and case.training_org_id else None
        if org is None:
            raise DeliveryError(
                f"case {row.case_id} has no training organisation to write to (outbox row {row.id})", permanent=True
            )
        if not org.email:
            raise DeliveryError(
                f"training organisation {org.id} ({org.name}) has no e-mail address: add one, then requeue "
                f"outbox row {row.id}",
                permanent=True,
            )
        return org.email
    if role == "prefet":
        departement = _structure(facts, row).departement
        try:
            return settings.prefet_email.format(departement=departement)
        except (KeyError, IndexError, ValueError) as exc:
            raise DeliveryError(
                f"CONUM_PREFET_EMAIL '{settings.prefet_email}' is not a valid address pattern ({exc!r}): "
                "write it with the one placeholder {departement}",
                permanent=True,
            ) from None
    if role == "anct":
        return settings.anct_email
    raise DeliveryError(
        f"outbox row {row.id} is for recipient '{role}', which has no e-mail address "
        "(recipients: structure, candidate, training_org, prefet, anct; payment orders go to files)",
        permanent=True,
    )


def payment_reference(case_id: int, tranche_number: int) -> str:
    """Return the stable reference of a tranche's payment, shown in the mail and the payment order."""
    return f"CNUM-{case_id:06d}-T{tranche_number}"


def _tranche(facts: _Facts, row: OutboxRow) -> Tranche | None:
    payload = row.payload
    if payload.get("tranche_id") is not None:
        return facts.get(Tranche, payload["tranche_id"])
    if row.case_id is not None and payload.get("tranche_number") is not None:
        number = payload["tranche_number"]
        return next((t for t in facts.tranches_of(row.case_id) if t.number == number), None)
    return None


def build_context(session: Session, row: OutboxRow) -> dict[str, Any]:
    """Return what a template sees: the row's payload, plus ``kind``, ``recipient`` and a few database facts.

    Added keys (always present, ``None`` when they do not apply): ``training_org_name``,
    ``previous_state_label`` (the state a timed-out case was in), ``reference`` and ``tranche_due_on``
    (tranche payments).
    """
    return _build_context(_Facts(session), row)


def _build_context(facts: _Facts, row: OutboxRow) -> dict[str, Any]:
    context: dict[str, Any] = dict(row.payload)
    context.update(
        kind=row.kind,
        recipient=row.recipient,
        case_id=row.case_id if row.case_id is not None else row.payload.get("case_id"),
        training_org_name=None,
        previous_state_label=None,
        reference=None,
        tranche_due_on=None,
    )
    case = facts.case(row)
    if case is not None and case.training_org_id is not None:
        org = facts.get(TrainingOrg, case.training_org_id)
        context["training_org_name"] = org.name if org else None
    if row.kind == "time_out" and case is not None and case.id is not None:
        from_state = facts.time_out_from(case.id)
        if from_state:
            context["previous_state_label"] = LABELS[State(from_state)]
    tranche = _tranche(facts, row)
    if tranche is not None:
        context["reference"] = payment_reference(tranche.case_id, tranche.number)
        context["tranche_due_on"] = tranche.due_on.isoformat() if tranche.due_on else None
    return context


# ---------------------------------------------------------------- payment orders


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


def payment_order_name(case_id: int, tranche_number: int) -> str:
    """Return the file name of a tranche's payment order: one name per tranche, whatever the retries."""
    return f"payment-order-case{case_id}-tranche{tranche_number}.json"


def build_payment_order(session: Session, row: OutboxRow) -> PaymentOrder:
    """Read the tranche, case and structure of a ``payment_order`` row and return the order to write."""
    return _build_payment_order(_Facts(session), row)


def _build_payment_order(facts: _Facts, row: OutboxRow) -> PaymentOrder:
    tranche = _tranche(facts, row)
    if tranche is None or tranche.status != "paid" or tranche.paid_at is None:
        state = "missing" if tranche is None else tranche.status
        raise DeliveryError(
            f"outbox row {row.id}: the tranche to pay is {state}, not paid: no payment order can be written",
            permanent=True,
        )
    case = facts.get(Case, tranche.case_id)
    structure = _structure(facts, row)
    assert case is not None
    last = max((t.number for t in facts.tranches_of(tranche.case_id)), default=None)
    return PaymentOrder(
        reference=payment_reference(tranche.case_id, tranche.number),
        case_id=tranche.case_id,
        tranche_id=tranche.id or 0,
        tranche_number=tranche.number,
        final=tranche.number == last,
        amount_cents=tranche.amount_cents,
        due_on=tranche.due_on,
        paid_at=utc(tranche.paid_at).astimezone(PARIS),
        subsidy_cents=case.subsidy_cents,
        structure=StructureRef(
            id=structure.id or 0, name=structure.name, kind=structure.kind, departement=structure.departement
        ),
        outbox_id=row.id or 0,
    )


def _write_new(folder: Path, name: str, data: bytes) -> bool:
    """Create ``folder/name`` with ``data`` atomically unless it exists; return whether it was created."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, folder / name)  # fails if the file exists: never two versions of one order
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def _write_replace(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- reports


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


# ---------------------------------------------------------------- transports


@dataclass
class _Job:
    """A claimed row, prepared inside the claim transaction, sent outside it."""

    id: int
    case_id: int | None
    kind: str
    recipient: str
    attempts: int
    to: str = ""
    subject: str = ""
    body: str = ""
    order: PaymentOrder | None = None
    error: DeliveryError | None = None


_UTF8 = Charset("utf-8")
_UTF8.header_encoding = _UTF8.body_encoding = QP


def _message(job: _Job, settings: Settings, at: datetime) -> Message:
    # the compat32 API builds a message about ten times faster than EmailMessage; the bytes are as standard
    msg = Message()
    msg["MIME-Version"] = "1.0"
    msg.set_payload(job.body, _UTF8)  # text/plain; charset="utf-8", quoted-printable
    name, address = parseaddr(settings.mail_from)
    msg["From"] = formataddr((name, address), charset="utf-8")
    msg["To"] = job.to
    msg["Subject"] = Header(job.subject, _UTF8, header_name="Subject").encode()
    msg["Date"] = format_datetime(utc(at).astimezone(PARIS))
    domain = address.rpartition("@")[2] or "conum.invalid"
    msg["Message-ID"] = f"<conum-outbox-{job.id}.case-{job.case_id}@{domain}>"
    msg["X-Conum-Kind"] = job.kind
    if job.case_id is not None:
        msg["X-Conum-Case"] = str(job.case_id)
    return msg


_FROM_LINE = re.compile(r"^From ", re.MULTILINE)


def _folded(name: str, value: str) -> str:
    """One header line as the compat32 generator writes it (short ASCII values are written as they are)."""
    if value.isascii() and "\n" not in value and len(name) + len(value) <= 76:
        return f"{name}: {value}\n"
    return f"{name}: {Header(value, header_name=name).encode(linesep=chr(10), maxlinelen=78)}\n"


#: What RFC 2047's "Q" encoding writes as it is in a header (a space becomes ``_``).
_Q_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/")
_Q_TEXT = 55  # encoded characters per word: ``=?utf-8?q?…?=`` stays within 67, a line within 78


def _q(ch: str) -> str:
    if ch in _Q_PLAIN:
        return ch
    if ch == " ":
        return "_"
    return "".join(f"={b:02X}" for b in ch.encode("utf-8"))


def _subject(value: str) -> str:
    """The Subject line: as it is when short ASCII, else UTF-8 "Q" encoded words (RFC 2047), folded.

    Linear in the subject's length (the standard library's encoder is quadratic on long French subjects);
    a character is never split between two words.
    """
    if value.isascii() and "\n" not in value and len(value) <= 69 and value.strip() == value:
        return f"Subject: {value}\n"
    words: list[str] = []
    current: list[str] = []
    size = 0
    for ch in value:
        q = _q(ch)
        if size + len(q) > _Q_TEXT and current:
            words.append("".join(current))
            current, size = [], 0
        current.append(q)
        size += len(q)
    if current:
        words.append("".join(current))
    return "Subject: " + "\n ".join(f"=?utf-8?q?{w}?=" for w in words) + "\n"


@lru_cache(maxsize=8)
def _head(mail_from: str) -> tuple[str, str]:
    """The headers every mail starts with, and the sender's address (for the envelope and the Message-ID)."""
    name, address = parseaddr(mail_from)
    msg = Message()
    msg["MIME-Version"] = "1.0"
    msg.set_payload("", _UTF8)
    msg["From"] = formataddr((name, address), charset="utf-8")
    return msg.as_bytes().decode("ascii").partition("\n\n")[0] + "\n", address


@lru_cache(maxsize=8)
def _date(at: datetime) -> str:
    return format_datetime(utc(at).astimezone(PARIS))


def _mail(job: _Job, settings: Settings, at: datetime) -> bytes | None:
    """The bytes ``_message(job…).as_bytes()`` gives (lines end with ``\\n``), built about ten times faster.

    ``None`` for an address outside ASCII: such mails take the ``Message`` path.
    """
    if not job.to.isascii():
        return None
    head, address = _head(settings.mail_from)
    domain = address.rpartition("@")[2] or "conum.invalid"
    parts = [
        head,
        _folded("To", job.to),
        _subject(job.subject),
        _folded("Date", _date(at)),
        _folded("Message-ID", f"<conum-outbox-{job.id}.case-{job.case_id}@{domain}>"),
        _folded("X-Conum-Kind", job.kind),
    ]
    if job.case_id is not None:
        parts.append(_folded("X-Conum-Case", str(job.case_id)))
    parts.append("\n")
    parts.append(_FROM_LINE.sub(">From ", _UTF8.body_encode(job.body.encode("utf-8"))))
    return "".join(parts).encode("ascii")


class _Smtp:
    """One SMTP connection per chunk, opened on the first mail; a failed connect fails the chunk's mails."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conn: smtplib.SMTP | None = None
        self.down: str | None = None

    def where(self) -> str:
        return f"{self.settings.smtp_host}:{self.settings.smtp_port}"

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn = smtplib.SMTP(s.smtp_host or "", s.smtp_port, timeout=SMTP_TIMEOUT)
        try:
            if s.smtp_starttls:
                conn.starttls(context=ssl.create_default_context())
            if s.smtp_user:
                conn.login(s.smtp_user, s.smtp_password or "")
        except BaseException:
            conn.close()
            raise
        return conn

    def send(self, msg: Message | bytes, sender: str = "", to: str = "") -> None:
        """Send ``msg``: a ``Message``, or ready bytes (lines ending with ``\\n``) from ``sender`` to ``to``."""
        if self.down is not None:
            raise DeliveryError(self.down)
        for again in (True, False):
            if self.conn is None:
                try:
                    self.conn = self._connect()
                except (OSError, smtplib.SMTPException) as exc:
                    self.down = (
                        f"cannot reach the SMTP server {self.where()} ({exc}): check CONUM_SMTP_HOST, "
                        "CONUM_SMTP_PORT and the credentials, and that the server runs"
                    )
                    raise DeliveryError(self.down) from None
            try:
                if isinstance(msg, bytes):
                    self.conn.sendmail(sender, [a for _, a in getaddresses([to])], msg.replace(b"\n", b"\r\n"))
                else:
                    self.conn.send_message(msg)
                return
            except smtplib.SMTPServerDisconnected as exc:
                self.conn = None
                if not again:
                    raise DeliveryError(f"the SMTP server {self.where()} closed the connection ({exc})") from None
            except smtplib.SMTPRecipientsRefused as exc:
                refused = "; ".join(f"{a}: {c} {m.decode(errors='replace')}" for a, (c, m) in exc.recipients.items())
                raise DeliveryError(f"the SMTP server {self.where()} refused the recipient ({refused})") from None
            except smtplib.SMTPResponseException as exc:
                text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
                raise DeliveryError(
                    f"the SMTP server {self.where()} refused the message ({exc.smtp_code} {text})"
                ) from None
            except (OSError, smtplib.SMTPException) as exc:
                self.conn = None
                raise DeliveryError(f"sending through the SMTP server {self.where()} failed ({exc})") from None

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except (OSError, smtplib.SMTPException):
                self.conn.close()
            self.conn = None
        self.down = None


def _eml_name(job: _Job) -> str:
    return f"outbox-{job.id:08d}-{job.kind}-{job.recipient}.eml"


def _send(job: _Job, settings: Settings, smtp: _Smtp | None, at: datetime) -> Sent:
    if job.order is not None:
        name = payment_order_name(job.order.case_id, job.order.tranche_number)
        data = (job.order.model_dump_json(indent=2) + "\n").encode()
        try:
            created = _write_new(Path(settings.payment_dir), name, data)
        except OSError as exc:
            raise DeliveryError(
                f"cannot write payment order {name} into {settings.payment_dir} ({exc}): check that "
                "CONUM_PAYMENT_DIR is a writable folder"
            ) from None
        if not created:
            logger.info("payment order %s already written; outbox row %s marked sent", name, job.id)
        return Sent(job.id, job.case_id, job.kind, job.recipient, name, job.order.reference, "payment_order")
    mail = _mail(job, settings, at)
    if smtp is not None:
        smtp.send(_message(job, settings, at) if mail is None else mail, _head(settings.mail_from)[1], job.to)
        return Sent(job.id, job.case_id, job.kind, job.recipient, job.to, job.subject, "smtp")
    try:
        _write_replace(Path(settings.mail_dir), _eml_name(job), mail or _message(job, settings, at).as_bytes())
    except OSError as exc:
        raise DeliveryError(
            f"cannot write {_eml_name(job)} into {settings.mail_dir} ({exc}): check that CONUM_MAIL_DIR is a "
            "writable folder, or set CONUM_SMTP_HOST"
        ) from None
    return Sent(job.id, job.case_id, job.kind, job.recipient, job.to, job.subject, "eml")


# ---------------------------------------------------------------- the outbox


def backoff(attempts: int) -> timedelta:
    """Return the wait before the next try after ``attempts`` tries: 1, 2, 4, 8… minutes, capped."""
    exponent = max(0, min(attempts - 1, 30))
    return min(RETRY_BASE * (2**exponent), RETRY_CAP)


def _prepare(facts: _Facts, row: OutboxRow, attempts: int, settings: Settings) -> _Job:
    job = _Job(row.id or 0, row.case_id, row.kind, row.recipient, attempts)
    try:
        if row.recipient == "payment":
            if row.kind != PAYMENT_KIND:
                raise DeliveryError(f"outbox row {row.id}: recipient 'payment' takes only {PAYMENT_KIND} rows", True)
            job.order = _build_payment_order(facts, row)
            return job
        job.to = _recipient_address(facts, row, settings)
        job.subject, job.body = render(row.kind, _build_context(facts, row))
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


_OUTBOX: Table = Outbox.__table__  # type: ignore[attr-defined]
#: Sets one claimed row (executed for the whole chunk at once).
_SET_ROW = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
        last_error=bindparam("b_error"),
    )
)
#: Records one row's failed try, only if the row is still this deliverer's claim (compare and set).
_SET_FAILURE = (
    update(_OUTBOX)
    .where(
        _OUTBOX.c.id == bindparam("b_id"),
        _OUTBOX.c.status == "sending",
        _OUTBOX.c.attempts == bindparam("b_attempts"),
    )
    .values(status=bindparam("b_status"), next_attempt_at=bindparam("b_next"), last_error=bindparam("b_error"))
)
#: Write the results at least this often while a chunk is being sent (a slow SMTP server delays the rest).
RECORD_EVERY = 5.0  # seconds


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
        _OUTBOX.select()
        .where(_OUTBOX.c.status.in_(("pending", "sending")), _OUTBOX.c.next_attempt_at <= bindparam("b_at"))
        .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id)
        .limit(bindparam("b_n"))
    )
    if by_kind:
        q = q.where(_OUTBOX.c.kind.in_(bindparam("b_kinds", expanding=True)))
    if lock:
        q = q.with_for_update(skip_locked=True)
    return q


def prepare(bind: Engine | Connection, taken: list[tuple[OutboxRow, int]], settings: Settings) -> list[_Job]:
    """Render the claimed rows' mails and payment orders, reading what they need through ``bind``.

    Outside the claim's write transaction: rendering never holds the lock. ``bind`` is the engine (the
    database as it is now, in one read transaction) or a connection in an open transaction (a snapshot).
    """
    if not taken:
        return []
    with Session(bind, expire_on_commit=False) as reader:
        facts = _Facts(reader)
        facts.load(row for row, _ in taken)
        return [_prepare(facts, row, attempts, settings) for row, attempts in taken]


def attempt(job: _Job, settings: Settings, smtp: _Smtp | None, at: datetime) -> Sent | None:
    """Send one prepared job; on failure return None and leave the reason in ``job.error``."""
    if job.error is not None:
        return None
    try:
        return _send(job, settings, smtp, at)
    except DeliveryError as exc:
        job.error = exc
    except Exception as exc:  # one row's surprise must not stop the others: retried like any error
        logger.exception("outbox row %s: unexpected error while sending", job.id)
        job.error = DeliveryError(f"unexpected error while sending ({type(exc).__name__}: {exc})")
    return None


def record(
    engine: Engine,
    results: list[tuple[_Job, Sent | None]],
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
        for start in range(0, len(ids), _IN_LIST):
            q = select(_OUTBOX.c.id, _OUTBOX.c.attempts).where(
                _OUTBOX.c.id.in_(ids[start : start + _IN_LIST]), _OUTBOX.c.status == "sending"
            )
            if not is_sqlite(engine):  # on SQLite the write transaction already excludes other writers
                q = q.with_for_update()
            claimed.update((i, a) for i, a in conn.execute(q).all())
        mine = [(job, sent) for job, sent in results if claimed.get(job.id) == job.attempts]
        sent_ids = [job.id for job, sent in mine if sent is not None]
        for start in range(0, len(sent_ids), _IN_LIST):
            conn.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id.in_(sent_ids[start : start + _IN_LIST]))
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
    smtp = _Smtp(settings) if settings.smtp_host else None
    done = 0
    try:
        while limit is None or done < limit:
            taken = claim(engine, at, settings, chunk if limit is None else min(chunk, limit - done), chosen, report)
            if not taken:
                break
            done += len(taken)
            results: list[tuple[_Job, Sent | None]] = []
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
    "PAYMENT_KIND",
    "DeliveryError",
    "DeliveryReport",
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
    "euros",
    "french_day",
    "french_instant",
    "mail_kinds",
    "payment_order_name",
    "payment_reference",
    "prepare",
    "recipient_address",
    "record",
    "render",
    "requeue",
]
