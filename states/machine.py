"""What is derived from the lifecycle table: the state machine, its checks and its views.

The machine is built by the library ``transitions`` from the table, with
``auto_transitions=False`` so nobody can jump to an arbitrary state; guards are
its conditions, looked up by name on the model. One machine serves the
process: models are passed to each trigger and never retained by it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from transitions import Machine

from states.audit import digest
from states.lifecycle import BY_NAME, EVENTS, OPENING, OPENING_EVENT, TERMINAL, State, destination

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


Move = tuple[str, str, str, list[str]]  # (event, source, destination, guards): one arrow of a table


def spec_of(moves: Iterable[Move], states: Iterable[str]) -> dict[str, Any]:
    """Return the arrows of a table in the form ``transitions.Machine`` takes (no automatic ``to_<state>``)."""
    transitions = [{"trigger": e, "source": src, "dest": dst, "conditions": guards} for e, src, dst, guards in moves]
    return {"states": list(states), "transitions": transitions, "auto_transitions": False}


def _moves() -> list[Move]:
    return [(e.name, src.value, destination(e, src).value, list(e.guards)) for e in EVENTS for src in e.sources]


def machine_spec() -> dict[str, Any]:
    """Return the table in the form ``transitions.Machine`` takes."""
    return spec_of(_moves(), [s.value for s in State])


def build_machine() -> Machine:
    """Build the state machine of the table, with no model bound."""
    return Machine(model=None, send_event=True, **machine_spec())


MACHINE = build_machine()
#: The version of the table each new case records: a digest of its moves, permissions, guards and data fields.
LIFECYCLE_VERSION = digest(
    {
        "moves": machine_spec(),
        "events": [(e.name, list(e.who), e.internal, e.data.describe()) for e in (*EVENTS, OPENING)],
    }
)


def trigger(model: Any, event: str) -> bool:
    """Fire ``event`` on ``model`` (a plain object with a ``state`` attribute and the guard methods).

    Guards are looked up by name on the model; they raise to refuse with a reason.
    """
    result: bool = MACHINE.events[event].trigger(model)
    return result


def is_legal(event: str, source: str | None, dest: str) -> bool:
    """Tell whether a history row (event, from, to) is a step of the table."""
    if event == OPENING_EVENT:
        return source is None and dest == State.CANDIDATE_PRESENTED
    e = BY_NAME.get(event)
    if e is None or source is None:
        return False
    return State(source) in e.sources and destination(e, State(source)).value == dest


def table_rows(state: State | str | None = None) -> list[dict[str, Any]]:
    """Return the table as one row per (event, source) pair, optionally only from ``state``.

    Each row names the event's guards and lists its data fields (name, type, required, French title and help).
    """
    rows = []
    for e in EVENTS:
        fields = e.data.describe()
        for src in e.sources:
            if state is not None and src != State(state):
                continue
            rows.append(
                {
                    "event": e.name,
                    "from": src.value,
                    "to": destination(e, src).value,
                    "who": list(e.who),
                    "guards": list(e.guards),
                    "fields": fields,
                }
            )
    return rows


def diagram(opening: tuple[str, str], moves: Iterable[Move], terminal: Iterable[str]) -> str:
    """Return the diagram (``stateDiagram-v2``) of a table: its opening event, its moves, its terminal states."""
    lines = ["stateDiagram-v2", f"    [*] --> {opening[1]}: {opening[0]}"]
    lines += [f"    {src} --> {dst}: {event}" for event, src, dst, _ in moves if src != dst]
    lines += [f"    {s} --> [*]" for s in terminal]
    return "\n".join(lines)


def mermaid() -> str:
    """Return the lifecycle diagram (``stateDiagram-v2``), generated from the table."""
    opening = (OPENING.name, OPENING.dest.value if OPENING.dest else "")
    return diagram(opening, _moves(), [s.value for s in State if s in TERMINAL])
