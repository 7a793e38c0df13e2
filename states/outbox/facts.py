"""The facts a notification reads: cases, structures, people and tranches, as they are at delivery time.

Addresses, names and tranches are read when the row is delivered, not when it was written, so that a
corrected address reaches the next try. ``Facts`` reads what a whole chunk of claimed rows needs in a few
queries, through one session: the database as it is now, or a snapshot (``states.db.snapshot``). A fact
that no retry can change (no address, no such structure, a tranche not paid) is a permanent
``DeliveryError``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlmodel import Session, SQLModel, col, select

from states.clock import PARIS, utc
from states.config import Settings
from states.lifecycle import LABELS, State
from states.models import Candidate, Case, History, Structure, TrainingOrg, Tranche
from states.outbox.claim import IN_LIST, OutboxRow
from states.outbox.job import DeliveryError
from states.outbox.payment import PaymentOrder, StructureRef, payment_reference

_M = TypeVar("_M", bound=SQLModel)


def _ids(values: Iterable[Any]) -> list[int]:
    """The distinct integer ids among ``values`` (anything else is left to the one-by-one reads)."""
    return sorted({v for v in values if isinstance(v, int) and not isinstance(v, bool)})


class Facts:
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
        for start in range(0, len(wanted), IN_LIST):
            part = wanted[start : start + IN_LIST]
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
        for start in range(0, len(paid), IN_LIST):
            part = paid[start : start + IN_LIST]
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
        for start in range(0, len(timed_out), IN_LIST):
            part = timed_out[start : start + IN_LIST]
            for c in part:
                self.time_outs[c] = None
            q = (
                select(History.case_id, History.from_state)
                .where(col(History.case_id).in_(part), History.event == "time_out")
                .order_by(col(History.id))
            )
            for case_id, from_state in self.session.exec(q).all():
                self.time_outs[case_id] = from_state  # the last one wins


def _structure(facts: Facts, row: OutboxRow) -> Structure:
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
    return read_address(Facts(session), row, settings)


def read_address(facts: Facts, row: OutboxRow, settings: Settings) -> str:
    """``recipient_address``, read through the facts of a chunk."""
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


def read_name(facts: Facts, row: OutboxRow) -> str:
    """The name shown beside the recipient's address (``To:``): the structure, the person, the organisation."""
    role, case = row.recipient, facts.case(row)
    if role == "structure":
        return _structure(facts, row).name
    if role == "candidate" and case is not None:
        candidate = facts.get(Candidate, case.candidate_id)
        return candidate.name if candidate is not None else ""
    if role == "training_org" and case is not None:
        org = facts.get(TrainingOrg, case.training_org_id)
        return org.name if org is not None else ""
    return ""


def _tranche(facts: Facts, row: OutboxRow) -> Tranche | None:
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
    return read_context(Facts(session), row)


def read_context(facts: Facts, row: OutboxRow) -> dict[str, Any]:
    """``build_context``, read through the facts of a chunk."""
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


def build_payment_order(session: Session, row: OutboxRow) -> PaymentOrder:
    """Read the tranche, case and structure of a ``payment_order`` row and return the order to write."""
    return read_payment_order(Facts(session), row)


def read_payment_order(facts: Facts, row: OutboxRow) -> PaymentOrder:
    """``build_payment_order``, read through the facts of a chunk."""
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


__all__ = [
    "Facts",
    "build_context",
    "build_payment_order",
    "read_address",
    "read_context",
    "read_name",
    "read_payment_order",
    "recipient_address",
]
