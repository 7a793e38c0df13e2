"""The applications' table as a property: whatever operators fire, the rows stay a walk of the table."""

from __future__ import annotations

from typing import Any

from applying import Apps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session

from states.applications.table import (
    BY_NAME,
    EVENTS,
    OPERATOR_EVENTS,
    TERMINAL,
    AppState,
    allowed_events,
    is_legal,
    mermaid,
)
from states.applications.views import CHAIN, get_application
from states.audit import verify
from states.errors import ConumError, IllegalEvent
from states.models import Structure

#: Data that passes every guard of an event (or trips one, for ``validate``'s posts), per event.
DATA: dict[str, dict[str, str]] = {
    "give_opinion": {"opinion": "favourable"},
    "validate": {"posts": "1", "committee": "C1"},
    "refuse": {"reason": "hors critères"},
    "sign_convention": {"start": "2026-06-01"},
    "request_change": {"posts": "1", "reason": "demande"},
    "withdraw": {},
    "close": {},
}


def test_every_state_is_reachable_from_the_submission_and_terminal_states_end() -> None:
    reached, todo = {AppState.SUBMITTED}, [AppState.SUBMITTED]
    while todo:
        state = todo.pop()
        for e in EVENTS:
            if state in e.sources and e.dest(state) not in reached:
                reached.add(e.dest(state))
                todo.append(e.dest(state))
    assert reached == set(AppState)
    assert all(allowed_events(s, include_internal=True) == [] for s in TERMINAL)
    assert "submitted --> prefet_reviewed: give_opinion" in mermaid()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(walk=st.lists(st.sampled_from(OPERATOR_EVENTS), max_size=8), posts=st.integers(1, 4))
def test_any_walk_of_operator_events_follows_the_table(apps: Apps, engine: Engine, walk: list[str], posts: int) -> None:
    app = apps.submit(posts=posts)
    day = 6
    for event in walk:
        before = get_application(engine, app)
        state = AppState(before["state"])
        try:
            after = apps.fire(app, event, f"2026-01-{day:02d}T10:00", **DATA[event])
        except IllegalEvent:
            assert event not in allowed_events(state)
            continue
        except ConumError as refused:  # a guard: the application is as it was
            assert event in allowed_events(state) and BY_NAME[event].guards, refused
            assert get_application(engine, app) == before
            continue
        day += 1
        assert event in allowed_events(state)
        assert after["state"] == BY_NAME[event].dest(state)
        _invariants(engine, after)
    view = get_application(engine, app)
    steps = [(h["event"], h["from"], h["to"]) for h in view["history"]]
    assert all(is_legal(*step) for step in steps)
    assert steps[-1][2] == view["state"]
    assert verify(engine, app, CHAIN).ok


def _invariants(engine: Engine, view: dict[str, Any]) -> None:
    with Session(engine) as s:
        structure = s.get_one(Structure, view["structure_id"])
    assert structure.posts == view["posts_validated"] >= 0
    if view["state"] in ("submitted", "prefet_reviewed", "refused", "withdrawn"):
        assert view["posts_validated"] == 0


def test_docs_diagram_is_generated_from_the_table() -> None:
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "applications.md").read_text(encoding="utf-8")
    assert re.findall(r"```mermaid\n(.*?)\n```", doc, flags=re.S)[0] == mermaid()
