"""The lifecycle of a structure's application, as one declarative table.

A structure applies (``submit``), the préfet of its département gives an
opinion, the committee (COSELEC) validates a number of posts or refuses, the
structure signs its convention with the State, then recruits. Later it may ask
for more posts or give some back: the request goes through the same opinion
and committee steps (``change_requested`` → ``change_reviewed``) and changes
the structure's posts only when validated. A structure added by ``conum
structure add`` (validated elsewhere) opens its application at
``convention_signed`` with the event ``import``.

Each row says where an event may start and where it leads from there (one
destination per source), who may fire it, its guards by name
(``states.applications.rules``) and the model of its data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from states.applications.data import (
    ChangeData,
    ConventionData,
    OpinionData,
    ReasonData,
    RefuseData,
    SubmitData,
    ValidateData,
)
from states.eventdata import EventData
from states.machine import Move, diagram, spec_of


class AppState(StrEnum):
    SUBMITTED = "submitted"
    PREFET_REVIEWED = "prefet_reviewed"
    VALIDATED = "validated"
    REFUSED = "refused"
    CONVENTION_SIGNED = "convention_signed"
    CHANGE_REQUESTED = "change_requested"
    CHANGE_REVIEWED = "change_reviewed"
    WITHDRAWN = "withdrawn"
    CLOSED = "closed"


LABELS: dict[AppState, str] = {
    AppState.SUBMITTED: "Candidature déposée",
    AppState.PREFET_REVIEWED: "Avis du préfet rendu",
    AppState.VALIDATED: "Validée en comité de sélection",
    AppState.REFUSED: "Refusée en comité de sélection",
    AppState.CONVENTION_SIGNED: "Convention signée",
    AppState.CHANGE_REQUESTED: "Demande de modification de postes déposée",
    AppState.CHANGE_REVIEWED: "Avis du préfet rendu sur la modification",
    AppState.WITHDRAWN: "Candidature retirée",
    AppState.CLOSED: "Dossier clos",
}

TERMINAL: frozenset[AppState] = frozenset({AppState.REFUSED, AppState.WITHDRAWN, AppState.CLOSED})
#: States in which the structure may be presented candidates (its convention is signed).
RECRUITING: frozenset[AppState] = frozenset(
    {AppState.CONVENTION_SIGNED, AppState.CHANGE_REQUESTED, AppState.CHANGE_REVIEWED}
)
#: States whose validated posts count against the envelopes.
HOLDING_POSTS: frozenset[AppState] = frozenset({AppState.VALIDATED, *RECRUITING})

S, R, V = AppState.SUBMITTED, AppState.PREFET_REVIEWED, AppState.VALIDATED
C, CQ, CR = AppState.CONVENTION_SIGNED, AppState.CHANGE_REQUESTED, AppState.CHANGE_REVIEWED


@dataclass(frozen=True)
class AppEvent:
    """One row of the table: an event, its moves (source → destination), who may fire it, guards and data."""

    name: str
    moves: tuple[tuple[AppState, AppState], ...]
    who: tuple[str, ...]
    guards: tuple[str, ...] = ()
    data: type[EventData] = EventData
    internal: bool = False  # fired only by the sweep
    label: str = ""

    @property
    def sources(self) -> tuple[AppState, ...]:
        return tuple(src for src, _ in self.moves)

    def dest(self, source: AppState) -> AppState:
        return dict(self.moves)[source]


def _stay(*states: AppState) -> tuple[tuple[AppState, AppState], ...]:
    return tuple((s, s) for s in states)


_CLOCKED = (S, R, CQ, CR)

EVENTS: tuple[AppEvent, ...] = (
    AppEvent(
        "give_opinion",
        ((S, R), (CQ, CR)),
        ("prefet", "admin"),
        guards=("opinion_allowed",),
        data=OpinionData,
        label="Rendre l'avis du préfet",
    ),
    AppEvent(
        "validate",
        ((R, V), (CR, C)),
        ("admin",),
        guards=("posts_within_request", "within_envelope", "posts_not_under_contract"),
        data=ValidateData,
        label="Valider en comité de sélection",
    ),
    AppEvent("refuse", ((R, AppState.REFUSED), (CR, C)), ("admin",), data=RefuseData, label="Refuser en comité"),
    AppEvent(
        "sign_convention",
        ((V, C),),
        ("structure", "admin"),
        guards=("convention_start_valid",),
        data=ConventionData,
        label="Signer la convention",
    ),
    AppEvent(
        "request_change",
        ((C, CQ),),
        ("structure", "admin"),
        guards=("change_within_limits", "posts_not_under_contract"),
        data=ChangeData,
        label="Demander plus de postes ou en rendre",
    ),
    AppEvent(
        "withdraw",
        ((S, AppState.WITHDRAWN), (R, AppState.WITHDRAWN)),
        ("structure", "admin"),
        data=ReasonData,
        label="Retirer la candidature",
    ),
    AppEvent(
        "close",
        ((C, AppState.CLOSED),),
        ("admin",),
        guards=("no_active_contract",),
        data=ReasonData,
        label="Clore le dossier",
    ),
    AppEvent("remind", _stay(*_CLOCKED), ("system",), internal=True, label="Relance"),
    AppEvent("escalate", _stay(*_CLOCKED), ("system",), internal=True, label="Escalade"),
)

BY_NAME: dict[str, AppEvent] = {e.name: e for e in EVENTS}
OPERATOR_EVENTS: tuple[str, ...] = tuple(e.name for e in EVENTS if not e.internal)
#: The events that open an application: a structure applies, or an admin imports one validated elsewhere.
SUBMIT = AppEvent("submit", (), ("structure", "admin"), data=SubmitData, label="Déposer une candidature")
IMPORT = AppEvent("import", (), ("admin",), label="Structure importée (validée hors de Conum)")
OPENINGS: dict[str, AppState] = {SUBMIT.name: S, IMPORT.name: C}
COMMON_GUARDS: tuple[str, ...] = ("actor_may_fire", "not_in_future", "history_moves_forward")

#: Which deadline clock each state runs (days in ``Policy.deadlines``, assumptions).
DEADLINE_CLOCK: dict[AppState, str] = {S: "opinion", CQ: "opinion", R: "committee", CR: "committee"}


def allowed_events(state: AppState | str, include_internal: bool = False) -> list[str]:
    """Return the events that may be fired from ``state``, in table order."""
    state = AppState(state)
    return [e.name for e in EVENTS if state in e.sources and (include_internal or not e.internal)]


def moves() -> list[Move]:
    return [(e.name, src.value, dst.value, list(e.guards)) for e in EVENTS for src, dst in e.moves]


SPEC = spec_of(moves(), [s.value for s in AppState])


def is_legal(event: str, source: str | None, dest: str) -> bool:
    """Tell whether a history row (event, from, to) is a step of the table."""
    if event in OPENINGS:
        return source is None and dest == OPENINGS[event]
    e = BY_NAME.get(event)
    return e is not None and source in e.sources and e.dest(AppState(source)) == dest


def table_rows(state: AppState | str | None = None) -> list[dict[str, object]]:
    """Return the table as one row per (event, source), as ``conum application events`` lists it."""
    rows: list[dict[str, object]] = []
    for e in (SUBMIT, *EVENTS):
        for src, dst in e.moves or ((None, S),):
            if state is not None and src != AppState(state):
                continue
            rows.append(
                {
                    "event": e.name,
                    "from": src.value if src else None,
                    "to": dst.value,
                    "who": list(e.who),
                    "guards": list(e.guards),
                    "fields": e.data.describe(),
                }
            )
    return rows


def mermaid() -> str:
    """Return the application lifecycle diagram, generated from the table."""
    return diagram((SUBMIT.name, S.value), moves(), [s.value for s in AppState if s in TERMINAL])
