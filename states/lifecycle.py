"""The lifecycle of a recruitment case, as one declarative table.

Everything else is derived from this module: the state machine that validates
each event (library ``transitions``, ``auto_transitions=False`` so nobody can
jump to an arbitrary state), the CLI's list of events, the Prefect parameter
enum, the mermaid diagram and the deadline sweep.

Internal events (reminders, escalations, tranche payments) are in the table
too, so that every history row replays through it, but only the sweep and the
payment run fire them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from transitions import Machine

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


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
    data: tuple[str, ...] = ()  # required keys of the event's data
    optional: tuple[str, ...] = ()  # optional keys
    internal: bool = False  # fired only by the sweep or the payment run
    label: str = ""


P, S, T = State.CANDIDATE_PRESENTED, State.SELECTED, State.TRAINING_ORG_CONTACTED
C, TR, IP = State.CONTRACT_SIGNED, State.IN_TRAINING, State.IN_POST

EVENTS: tuple[Event, ...] = (
    Event("select", (P,), S, ("structure", "admin"), label="Retenir le candidat"),
    Event("decline", (P, S), State.DECLINED, ("structure", "admin"), data=("reason",), label="Décliner"),
    Event(
        "withdraw",
        (P, S, T),
        State.WITHDRAWN,
        ("candidate", "admin", "system"),
        optional=("reason",),
        label="Retrait du candidat",
    ),
    Event(
        "contact_training_org",
        (S,),
        T,
        ("structure", "admin"),
        guards=("known_training_org",),
        data=("org",),
        label="Contacter l'organisme de formation",
    ),
    Event(
        "sign_contract",
        (T,),
        C,
        ("structure", "admin"),
        guards=("valid_contract", "salary_at_least_smic", "within_quota", "candidate_free"),
        data=("type", "start", "salary"),
        optional=("end",),
        label="Signer le contrat",
    ),
    Event(
        "start_training",
        (C,),
        TR,
        ("structure", "admin"),
        guards=("date_not_before_contract",),
        optional=("date",),
        label="Départ en formation",
    ),
    Event(
        "complete_training",
        (TR,),
        IP,
        ("structure", "admin"),
        guards=("date_not_before_contract",),
        optional=("date",),
        label="Prise de poste",
    ),
    Event(
        "break_contract",
        (C, TR, IP),
        State.BROKEN,
        ("structure", "admin"),
        guards=("valid_rupture",),
        data=("reason", "date"),
        label="Rompre le contrat",
    ),
    Event("cancel", OPEN, State.CANCELLED, ("prefet", "admin"), data=("reason",), label="Annuler le dossier"),
    Event("time_out", (P, S, T), State.EXPIRED, ("system",), label="Délai dépassé"),
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
OPENING = Event("present", (), State.CANDIDATE_PRESENTED, ("admin",), label="Présenter un candidat")
OPENING_EVENT = OPENING.name


def destination(event: Event, source: State) -> State:
    return event.dest if event.dest is not None else source


def allowed_events(state: State | str, include_internal: bool = False) -> list[str]:
    """Return the events that may be fired from ``state``, in table order."""
    state = State(state)
    return [e.name for e in EVENTS if state in e.sources and (include_internal or not e.internal)]


def table_rows(state: State | str | None = None) -> list[dict[str, Any]]:
    """Return the table as one row per (event, source) pair, optionally only from ``state``."""
    rows = []
    for e in EVENTS:
        for src in e.sources:
            if state is not None and src != State(state):
                continue
            rows.append({"event": e.name, "from": src.value, "to": destination(e, src).value, "who": list(e.who)})
    return rows


def is_legal(event: str, source: str | None, dest: str) -> bool:
    """Tell whether a history row (event, from, to) is a step of the table."""
    if event == OPENING_EVENT:
        return source is None and dest == State.CANDIDATE_PRESENTED
    e = BY_NAME.get(event)
    if e is None or source is None:
        return False
    return State(source) in e.sources and destination(e, State(source)).value == dest


def machine_spec() -> dict[str, Any]:
    """Return the table in the form ``transitions.Machine`` takes."""
    transitions = []
    for e in EVENTS:
        for src in e.sources:
            transitions.append(
                {
                    "trigger": e.name,
                    "source": src.value,
                    "dest": destination(e, src).value,
                    "conditions": list(e.guards),
                }
            )
    return {"states": [s.value for s in State], "transitions": transitions, "auto_transitions": False}


def build_machine() -> Machine:
    """Build the state machine of the table, with no model bound."""
    return Machine(model=None, send_event=True, **machine_spec())


#: One machine for the process; models are passed to each trigger and never retained by it.
MACHINE = build_machine()


def trigger(model: Any, event: str) -> bool:
    """Fire ``event`` on ``model`` (a plain object with a ``state`` attribute and the guard methods).

    Guards are looked up by name on the model; they raise to refuse with a reason.
    """
    result: bool = MACHINE.events[event].trigger(model)
    return result


def mermaid() -> str:
    """Return the lifecycle diagram (``stateDiagram-v2``), generated from the table."""
    lines = ["stateDiagram-v2", f"    [*] --> {State.CANDIDATE_PRESENTED.value}: present"]
    for e in EVENTS:
        if e.dest is None:
            continue
        for src in e.sources:
            lines.append(f"    {src.value} --> {e.dest.value}: {e.name}")
    for s in State:
        if s in TERMINAL:
            lines.append(f"    {s.value} --> [*]")
    return "\n".join(lines)


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
