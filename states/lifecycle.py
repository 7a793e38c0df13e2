"""The lifecycle of a recruitment case, as one declarative table.

Each row says where an event may start, where it leads, who may fire it, the
guards (rules, by name, in ``states.rules``) it must pass and the model of its
data (``states.eventdata``). Everything else is derived from this table
(``states.machine``): the state machine that validates each event, the CLI's
list of events, the Prefect forms, the mermaid diagram and the deadline sweep.

Internal events (reminders, escalations, tranche payments) are in the table
too, so that every history row replays through it, but only the sweep and the
payment run fire them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from states.eventdata import (
    CancelData,
    ContactData,
    ContractData,
    DatedData,
    DeclineData,
    EventData,
    RuptureData,
    WithdrawData,
)


class State(StrEnum):
    CANDIDATE_PRESENTED = "candidate_presented"
    SELECTED = "selected"
    TRAINING_ORG_CONTACTED = "training_org_contacted"
    CONTRACT_SIGNED = "contract_signed"
    IN_TRAINING = "in_training"
    IN_POST = "in_post"
    TRANCHES_PAID = "tranches_paid"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    BROKEN = "broken"
    CANCELLED = "cancelled"


#: Labels shown to French users.
LABELS: dict[State, str] = {
    State.CANDIDATE_PRESENTED: "Candidat présenté",
    State.SELECTED: "Candidat retenu",
    State.TRAINING_ORG_CONTACTED: "Organisme de formation contacté",
    State.CONTRACT_SIGNED: "Contrat signé",
    State.IN_TRAINING: "En formation initiale",
    State.IN_POST: "En poste",
    State.TRANCHES_PAID: "Subvention versée",
    State.DECLINED: "Candidature déclinée",
    State.WITHDRAWN: "Candidature retirée",
    State.EXPIRED: "Délai dépassé",
    State.BROKEN: "Contrat rompu",
    State.CANCELLED: "Dossier annulé",
}

TERMINAL: frozenset[State] = frozenset(
    {State.TRANCHES_PAID, State.DECLINED, State.WITHDRAWN, State.EXPIRED, State.BROKEN, State.CANCELLED}
)
OPEN: tuple[State, ...] = tuple(s for s in State if s not in TERMINAL)
#: States in which the case holds a contract: counted for quotas and for the candidate rule.
ACTIVE_CONTRACT: frozenset[State] = frozenset({State.CONTRACT_SIGNED, State.IN_TRAINING, State.IN_POST})
#: States from which a candidate is still "in the pool" for this case.
PRE_CONTRACT: tuple[State, ...] = (State.CANDIDATE_PRESENTED, State.SELECTED, State.TRAINING_ORG_CONTACTED)

ACTOR_KINDS = ("admin", "system", "structure", "candidate", "prefet")


@dataclass(frozen=True)
class Event:
    """One row of the table: an event, where it may start, where it leads, and who may fire it."""

    name: str
    sources: tuple[State, ...]
    dest: State | None  # None: the case stays where it is
    who: tuple[str, ...]
    guards: tuple[str, ...] = ()
    data: type[EventData] = EventData  # the model of the event's data
    internal: bool = False  # fired only by the sweep or the payment run
    label: str = ""


P, S, T = State.CANDIDATE_PRESENTED, State.SELECTED, State.TRAINING_ORG_CONTACTED
C, TR, IP = State.CONTRACT_SIGNED, State.IN_TRAINING, State.IN_POST

EVENTS: tuple[Event, ...] = (
    Event("select", (P,), S, ("structure", "admin"), label="Retenir le candidat"),
    Event("decline", (P, S), State.DECLINED, ("structure", "admin"), data=DeclineData, label="Décliner"),
    Event(
        "withdraw",
        (P, S, T),
        State.WITHDRAWN,
        ("candidate", "admin", "system"),
        data=WithdrawData,
        label="Retrait du candidat",
    ),
    Event(
        "contact_training_org",
        (S,),
        T,
        ("structure", "admin"),
        guards=("known_training_org",),
        data=ContactData,
        label="Contacter l'organisme de formation",
    ),
    Event(
        "sign_contract",
        (T,),
        C,
        ("structure", "admin"),
        guards=(
            "contract_type_allowed",
            "contract_dates_valid",
            "funded_within_convention",
            "salary_at_least_smic",
            "within_quota",
            "candidate_free",
        ),
        data=ContractData,
        label="Signer le contrat",
    ),
    Event(
        "start_training",
        (C,),
        TR,
        ("structure", "admin"),
        guards=("training_dates_valid",),
        data=DatedData,
        label="Départ en formation",
    ),
    Event(
        "complete_training",
        (TR,),
        IP,
        ("structure", "admin"),
        guards=("training_dates_valid",),
        data=DatedData,
        label="Prise de poste",
    ),
    Event(
        "break_contract",
        (C, TR, IP),
        State.BROKEN,
        ("structure", "admin"),
        guards=("rupture_reason_allowed", "rupture_within_contract"),
        data=RuptureData,
        label="Rompre le contrat",
    ),
    Event("cancel", OPEN, State.CANCELLED, ("prefet", "admin"), data=CancelData, label="Annuler le dossier"),
    Event("time_out", (P, S, T), State.EXPIRED, ("system",), internal=True, label="Délai dépassé"),
    Event("remind", (P, S, T, C, TR), None, ("system",), internal=True, label="Relance"),
    Event("escalate", (P, S, T, C, TR), None, ("system",), internal=True, label="Escalade"),
    Event("pay_tranche", (IP,), None, ("system",), internal=True, label="Versement d'une tranche"),
    Event(
        "pay_final_tranche",
        (IP,),
        State.TRANCHES_PAID,
        ("system",),
        internal=True,
        label="Versement de la dernière tranche",
    ),
)

BY_NAME: dict[str, Event] = {e.name: e for e in EVENTS}
#: Events an operator may fire (CLI ``advance``, the ``advance-case`` flow).
OPERATOR_EVENTS: tuple[str, ...] = tuple(e.name for e in EVENTS if not e.internal)
#: The event that opens a case; it has no source state and is not a transition of the machine.
OPENING = Event(
    "present",
    (),
    State.CANDIDATE_PRESENTED,
    ("admin",),
    guards=("not_in_future", "convention_signed", "candidate_not_anonymised", "candidate_free", "not_presented_twice"),
    label="Présenter un candidat",
)
#: Guards every event passes, before its own: who may act, and a history that only moves forward.
COMMON_GUARDS: tuple[str, ...] = ("actor_may_fire", "not_in_future", "history_moves_forward")
OPENING_EVENT = OPENING.name


def destination(event: Event, source: State) -> State:
    return event.dest if event.dest is not None else source


def allowed_events(state: State | str, include_internal: bool = False) -> list[str]:
    """Return the events that may be fired from ``state``, in table order."""
    state = State(state)
    return [e.name for e in EVENTS if state in e.sources and (include_internal or not e.internal)]


#: The deadline policy of each state: which instant starts its clock. The days
#: of each step (reminder, escalation, time-out) are policy data (``Policy.deadlines``).
#: ``selected`` and ``training_org_contacted`` share one clock, started at selection.
DEADLINE_CLOCK: dict[State, str] = {
    State.CANDIDATE_PRESENTED: "presented",
    State.SELECTED: "selected",
    State.TRAINING_ORG_CONTACTED: "selected",
    State.CONTRACT_SIGNED: "contract_start",
    State.IN_TRAINING: "training_start",
}
