"""The words an agent reads: French labels of states, events and escalation levels, dates and months.

Every page, table and report shown in the Prefect UI takes its labels from here, so that no raw code
(``training_org_contacted``, ``time_out``) reaches an agent and the same state reads the same
everywhere. Tables use the short labels (narrow columns) with ``legend()`` saying what each stands for.

Everything a person typed (names, reasons) is data: ``text()`` escapes every markdown and HTML
character and shows a line break as a space, so that a name cannot add a link, an image, a heading or
a table row to a page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from states.clock import PARIS, utc
from states.french import MONTHS
from states.lifecycle import BY_NAME, EVENTS, LABELS, OPENING, TERMINAL, State, destination

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")

#: Short state labels: the column headers of the dashboard's tables.
SHORT: dict[State, str] = {
    State.CANDIDATE_PRESENTED: "présenté",
    State.SELECTED: "retenu",
    State.TRAINING_ORG_CONTACTED: "OF contacté",
    State.CONTRACT_SIGNED: "signé",
    State.IN_TRAINING: "en formation",
    State.IN_POST: "en poste",
    State.TRANCHES_PAID: "soldé",
    State.DECLINED: "décliné",
    State.WITHDRAWN: "retiré",
    State.EXPIRED: "expiré",
    State.BROKEN: "rompu",
    State.CANCELLED: "annulé",
}
#: What each escalation level means (a case page says it in full, a table in one word).
ESCALATION = {0: "aucune", 1: "relance envoyée", 2: "escaladé au préfet", 3: "escaladé à l'ANCT"}
ESCALATION_SHORT = {0: "—", 1: "relance", 2: "préfet", 3: "ANCT"}


def text(value: Any) -> str:
    """Return ``value`` as inert markdown text: markup characters escaped, HTML and line breaks neutralised."""
    raw = " ".join(str(value).split())
    raw = raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN.sub(r"\\\1", raw)


def state_label(state: str | State | None) -> str:
    """Return the French label of a state (or a dash when there is none)."""
    if not state:
        return "—"
    try:
        return LABELS[State(state)]
    except ValueError:
        return text(state)


def short_state(state: str | State) -> str:
    try:
        return SHORT[State(state)]
    except ValueError:
        return text(state)


def event_label(event: str) -> str:
    """Return the French label of an event (the opening ``present`` included)."""
    if event == OPENING.name:
        return OPENING.label
    ev = BY_NAME.get(event)
    return ev.label if ev and ev.label else text(event)


def escalation(level: int | None, short: bool = False) -> str:
    names = ESCALATION_SHORT if short else ESCALATION
    return names.get(level or 0, str(level))


def when(value: datetime | None) -> str:
    """Return an instant for a table cell, in Paris time, to the minute: ``16/03/2026 10:00`` (— if none)."""
    if value is None:
        return "—"
    local = utc(value).astimezone(PARIS)
    return f"{local:%d/%m/%Y %H:%M}"


def when_long(value: datetime) -> str:
    """Return an instant for a title, in Paris time, to the minute: ``16 mars 2026 à 10 h 00``."""
    local = utc(value).astimezone(PARIS)
    day = "1er" if local.day == 1 else str(local.day)
    return f"{day} {MONTHS[local.month - 1]} {local.year} à {local.hour} h {local.minute:02d}"


def month_label(key: str) -> str:
    """Return ``2026-03`` as ``mars 2026``; any other text (a total, an undated row) as it is."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", key)
    if not match or not 1 <= int(match[2]) <= 12:
        return key
    return f"{MONTHS[int(match[2]) - 1]} {match[1]}"


def legend(states: Iterable[State], extra: dict[str, str] | None = None) -> str:
    """Return one line saying what each short column header stands for."""
    parts = [f"**{SHORT[s]}** : {LABELS[s]}" for s in states]
    parts += [f"**{k}** : {v}" for k, v in (extra or {}).items()]
    return " ; ".join(parts) + "."


def lifecycle_diagram() -> str:
    """Return the lifecycle (``stateDiagram-v2``) with French labels only: states and events as agents read them."""
    ids = {s: f"e{i}" for i, s in enumerate(State)}
    lines = ["stateDiagram-v2"]
    lines += [f'    state "{LABELS[s]}" as {ids[s]}' for s in State]
    if OPENING.dest is not None:
        lines.append(f"    [*] --> {ids[OPENING.dest]}: {OPENING.label}")
    seen: set[tuple[str, str, str]] = set()
    for ev in EVENTS:
        for src in ev.sources:
            dst = destination(ev, src)
            edge = (ids[src], ids[dst], event_label(ev.name))
            if src != dst and edge not in seen:
                seen.add(edge)
                lines.append(f"    {edge[0]} --> {edge[1]}: {edge[2]}")
    lines += [f"    {ids[s]} --> [*]" for s in State if s in TERMINAL]
    return "\n".join(lines)
