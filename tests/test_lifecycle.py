"""Lifecycle: which events move a case where, who may fire them, and what a refusal leaves behind.

The expected moves and permissions below are written from the programme's rules,
not read from ``states.lifecycle``, so that a change to the table that breaks
the programme fails here.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import snapshot
from sqlalchemy import select
from transitions import Machine

from states import batch, service
from states.clock import parse_instant
from states.db import write_session
from states.errors import IllegalEvent, NotAllowed, RuleViolation
from states.lifecycle import EVENTS, State
from states.machine import machine_spec, table_rows
from states.models import Tranche
from states.views import get_case

P, S, T = State.CANDIDATE_PRESENTED, State.SELECTED, State.TRAINING_ORG_CONTACTED
C, TR, IP = State.CONTRACT_SIGNED, State.IN_TRAINING, State.IN_POST
PAID, DECLINED, WITHDRAWN = State.TRANCHES_PAID, State.DECLINED, State.WITHDRAWN
EXPIRED, BROKEN, CANCELLED = State.EXPIRED, State.BROKEN, State.CANCELLED
OPEN_STATES = (P, S, T, C, TR, IP)

#: The programme's moves: event -> {(source, target)}.
MOVES: dict[str, set[tuple[State, State]]] = {
    "select": {(P, S)},
    "decline": {(P, DECLINED), (S, DECLINED)},
    "withdraw": {(P, WITHDRAWN), (S, WITHDRAWN), (T, WITHDRAWN)},
    "contact_training_org": {(S, T)},
    "sign_contract": {(T, C)},
    "start_training": {(C, TR)},
    "complete_training": {(TR, IP)},
    "break_contract": {(C, BROKEN), (TR, BROKEN), (IP, BROKEN)},
    "cancel": {(s, CANCELLED) for s in OPEN_STATES},
    "time_out": {(P, EXPIRED), (S, EXPIRED), (T, EXPIRED)},
    "remind": {(s, s) for s in (P, S, T, C, TR)},
    "escalate": {(s, s) for s in (P, S, T, C, TR)},
    "pay_tranche": {(IP, IP)},
    "pay_final_tranche": {(IP, PAID)},
}
INTERNAL = ("remind", "escalate", "pay_tranche", "pay_final_tranche", "time_out")
OPERATOR = tuple(e for e in MOVES if e not in INTERNAL)

#: Who may fire each operator event (actor kinds; structure, candidate and préfet only on their own cases).
MAY: dict[str, set[str]] = {
    "select": {"admin", "structure"},
    "decline": {"admin", "structure"},
    "withdraw": {"admin", "candidate"},
    "contact_training_org": {"admin", "structure"},
    "sign_contract": {"admin", "structure"},
    "start_training": {"admin", "structure"},
    "complete_training": {"admin", "structure"},
    "break_contract": {"admin", "structure"},
    "cancel": {"admin", "prefet"},
}

# The walk of ``reach``: the events that bring a fresh case (presented, or signed) to each state.
_SELECT = ("select", "2026-03-02T10:00", "admin", {})
_START = ("start_training", "2026-04-01T10:00", "admin", {"date": "2026-04-01"})
_COMPLETE = ("complete_training", "2026-08-01T10:00", "admin", {"date": "2026-08-01"})
WALKS: dict[State, list[tuple[str, str, str, dict[str, str]]]] = {
    P: [],
    S: [_SELECT],
    T: [_SELECT, ("contact_training_org", "2026-03-03T10:00", "admin", {"org": "ORG"})],
    C: [],
    TR: [_START],
    IP: [_START, _COMPLETE],
    PAID: [_START, _COMPLETE],
    DECLINED: [("decline", "2026-03-02T10:00", "structure:{s}", {"reason": "profil éloigné du poste"})],
    WITHDRAWN: [("withdraw", "2026-03-02T10:00", "candidate:{k}", {})],
    EXPIRED: [("time_out", "2026-03-16T10:00", "system", {})],
    BROKEN: [("break_contract", "2026-04-15T10:00", "admin", {"reason": "demission", "date": "2026-04-15"})],
    CANCELLED: [("cancel", "2026-03-02T10:00", "admin", {"reason": "poste supprimé"})],
}
#: An instant after every walk: events tried there are refused for their state, not for going back in time.
AFTER_WALKS = "2028-06-01T10:00"
#: The instant the allowed moves are tried at (every walk but the one to tranches_paid ends before it).
LATER = "2026-12-01T10:00"

#: Data that satisfies each operator event's rules when fired at ``LATER``.
GOOD_DATA: dict[str, dict[str, str]] = {
    "select": {},
    "decline": {"reason": "profil éloigné du poste"},
    "withdraw": {"reason": "a trouvé un autre emploi"},
    "contact_training_org": {"org": "ORG"},
    "sign_contract": {"type": "CDD", "start": "2027-01-04", "end": "2028-12-31", "salary": "1900.00"},
    "start_training": {},
    "complete_training": {},
    "break_contract": {"reason": "licenciement", "date": "2026-11-30"},
    "cancel": {"reason": "structure dissoute"},
    "time_out": {},
}


def fill(world: Any, data: dict[str, str]) -> dict[str, str]:
    """Put the id of the world's training organisation where the data names it."""
    return {k: str(world.org) if k == "org" else v for k, v in data.items()}


def reach(world: Any, state: State) -> int:
    """Return a new case (own structure and candidate) brought to ``state``."""
    s, k = world.structure(), world.candidate()
    contract = state in (C, TR, IP, PAID, BROKEN)
    case = world.signed(s, k) if contract else world.present(s, k)
    for event, at, actor, data in WALKS[state]:
        if event in INTERNAL:
            fire_internal(world, case, event, at, internal_data(world, case, event))
        else:
            world.fire(case, event, at, actor=actor.format(s=s, k=k), **fill(world, data))
    if state is PAID:
        batch.pay(world.engine, parse_instant("2028-04-01T12:00"), world.policy)
    assert get_case(world.engine, case)["state"] == state
    return case


def fire_internal(world: Any, case: int, event: str, at: str, data: dict[str, Any], internal: bool = True) -> str:
    """Fire an internal event as the sweep or the payment run would; return the case's state."""
    with write_session(world.engine) as s:
        fired = service.fire(
            s, case, event, actor="system", at=parse_instant(at), data=data, policy=world.policy, internal=internal
        )
        return fired.state


def internal_data(world: Any, case: int, event: str) -> dict[str, Any]:
    if event == "time_out":
        return {"due_at": None}
    if event in ("remind", "escalate"):
        return {"step": 0, "level": 1 if event == "remind" else 2, "due_at": None}
    with write_session(world.engine) as s:
        q = select(Tranche).where(Tranche.case_id == case, Tranche.status == "scheduled").order_by(Tranche.number)
        t = s.execute(q).scalars().first()
        assert t is not None
        return {"tranche_id": t.id, "number": t.number, "amount_cents": t.amount_cents, "due_on": str(t.due_on)}


def test_table_has_the_programme_moves() -> None:
    from_table = {(r["event"], State(r["from"]), State(r["to"])) for r in table_rows()}
    expected = {(e, src, dst) for e, pairs in MOVES.items() for src, dst in pairs}
    assert from_table == expected


@pytest.mark.parametrize("event", list(MOVES))
def test_each_allowed_event_moves_to_the_table_destination(world: Any, event: str) -> None:
    observed = set()
    for source, _ in sorted(MOVES[event]):
        case = reach(world, source)
        if event in INTERNAL:
            state = fire_internal(world, case, event, LATER, internal_data(world, case, event))
        else:
            state = world.fire(case, event, LATER, **fill(world, GOOD_DATA[event]))["state"]
        history = get_case(world.engine, case)["history"]
        assert (history[-1]["event"], history[-1]["from"], history[-1]["to"]) == (event, source, state)
        observed.add((source, State(state)))
    assert observed == MOVES[event]


def _allowed_in_message(message: str, state: State) -> set[str]:
    listed = message.split(f"Events allowed from {state}: ", 1)[1]
    return set() if listed.startswith("none") else set(listed.split(", "))


@pytest.mark.parametrize("state", list(State))
def test_refused_event_names_state_and_allowed_events_and_changes_nothing(world: Any, state: State) -> None:
    case = reach(world, state)
    allowed_here = {e for e in OPERATOR if any(src == state for src, _ in MOVES[e])}
    before = snapshot(world.engine)
    refused = [e for e in MOVES if not any(src == state for src, _ in MOVES[e])]
    for event in refused:
        with pytest.raises(IllegalEvent) as err:
            if event in INTERNAL:
                fire_internal(world, case, event, AFTER_WALKS, {"step": 0, "level": 1, "tranche_id": 1})
            else:
                world.fire(case, event, AFTER_WALKS, **fill(world, GOOD_DATA[event]))
        message = str(err.value)
        assert f"'{state}'" in message
        assert _allowed_in_message(message, state) == allowed_here
    assert snapshot(world.engine) == before


def test_unknown_event_is_refused_with_the_allowed_events(world: Any) -> None:
    case = reach(world, S)
    before = snapshot(world.engine)
    with pytest.raises(IllegalEvent) as err:
        world.fire(case, "hire", LATER)
    assert _allowed_in_message(str(err.value), S) == {
        "decline",
        "withdraw",
        "contact_training_org",
        "cancel",
    }
    assert snapshot(world.engine) == before


def test_no_event_jumps_straight_to_a_state(world: Any) -> None:
    assert machine_spec()["auto_transitions"] is False

    class Model:
        pass

    model = Model()
    Machine(model=model, initial=P.value, **machine_spec())
    assert not [s for s in State if hasattr(model, f"to_{s.value}")]
    assert {e.name for e in EVENTS} <= set(dir(model))
    case = reach(world, P)
    before = snapshot(world.engine)
    with pytest.raises(IllegalEvent, match="unknown event"):
        world.fire(case, f"to_{IP.value}", LATER)
    assert snapshot(world.engine) == before


@pytest.mark.parametrize("event", INTERNAL)
def test_internal_events_need_the_internal_flag(world: Any, event: str) -> None:
    source = sorted(MOVES[event])[0][0]
    case = reach(world, source)
    data = internal_data(world, case, event)
    before = snapshot(world.engine)
    with pytest.raises(IllegalEvent, match="sweep or payment run"):
        fire_internal(world, case, event, LATER, data, internal=False)
    assert snapshot(world.engine) == before


def _actors(world: Any, case: int) -> dict[str, str]:
    """Return one actor of each kind: on the case (own) and elsewhere (other)."""
    view = get_case(world.engine, case)
    s, k = view["structure_id"], view["candidate_id"]
    return {
        "admin": "admin",
        "system": "system",
        "structure": f"structure:{s}",
        "other structure": f"structure:{s + 1000}",
        "candidate": f"candidate:{k}",
        "other candidate": f"candidate:{k + 1000}",
        "prefet": "prefet:33",
        "other prefet": "prefet:75",
    }


@pytest.mark.parametrize("event", OPERATOR)
def test_only_allowed_actors_fire_each_event(world: Any, event: str) -> None:
    source = sorted(MOVES[event])[0][0]
    case = reach(world, source)  # world's structures are in département 33
    actors = _actors(world, case)
    before = snapshot(world.engine)
    refused = {kind for kind in actors if kind not in MAY[event]}
    for kind in sorted(refused):
        with pytest.raises(NotAllowed):
            world.fire(case, event, LATER, actor=actors[kind], **fill(world, GOOD_DATA[event]))
    assert snapshot(world.engine) == before
    for kind in sorted(MAY[event]):
        fresh = case if kind == min(MAY[event]) else reach(world, source)
        view = world.fire(fresh, event, LATER, actor=_actors(world, fresh)[kind], **fill(world, GOOD_DATA[event]))
        assert (view["history"][-1]["event"], view["history"][-1]["actor"]) == (event, _actors(world, fresh)[kind])


def test_no_person_acts_as_system(world: Any) -> None:
    # system withdraws a candidate only when their contract is signed elsewhere, inside that signing
    case = reach(world, P)
    before = snapshot(world.engine)
    for event, data in (("withdraw", {}), ("select", {}), ("cancel", {"reason": "doublon"})):
        with pytest.raises(NotAllowed, match="no person may act as system") as err:
            world.fire(case, event, LATER, actor="system", **data)
        assert err.value.rule == "actor_may_fire"
    assert snapshot(world.engine) == before


def test_time_out_is_fired_only_by_the_sweep(world: Any) -> None:
    case = reach(world, P)  # presented on 2026-03-01: the time-out falls on day 15
    before = snapshot(world.engine)
    for actor in ("admin", "system"):
        with pytest.raises((IllegalEvent, NotAllowed)):
            world.fire(case, "time_out", "2026-03-02T10:00", actor=actor)
    assert snapshot(world.engine) == before
    batch.sweep(world.engine, parse_instant("2026-03-10T10:00"), world.policy)
    assert get_case(world.engine, case)["state"] == P  # only the reminder was due
    batch.sweep(world.engine, parse_instant("2026-03-16T10:00"), world.policy)
    assert get_case(world.engine, case)["state"] == EXPIRED


def test_prefet_cancels_in_an_overseas_departement(world: Any) -> None:
    s = world.structure(departement="974")
    case = world.present(s, world.candidate())
    with pytest.raises(NotAllowed, match="département 974"):
        world.fire(case, "cancel", LATER, actor="prefet:971", reason="doublon")
    assert world.fire(case, "cancel", LATER, actor="prefet:974", reason="doublon")["state"] == CANCELLED


def test_only_admin_presents_a_candidate(world: Any) -> None:
    s, k = world.structure(), world.candidate()
    before = snapshot(world.engine)
    for actor in ("system", f"structure:{s}", f"candidate:{k}", "prefet:33"):
        with (
            write_session(world.engine) as session,
            pytest.raises(NotAllowed),
        ):
            service.present(session, s, k, actor=actor, at=parse_instant(LATER), policy=world.policy)
    assert snapshot(world.engine) == before


def test_event_earlier_than_the_last_history_entry_is_refused(world: Any) -> None:
    case = reach(world, S)  # selected on 2026-03-02T10:00
    before = snapshot(world.engine)
    with pytest.raises(RuleViolation, match="back in time") as err:
        world.fire(case, "contact_training_org", "2026-03-02T09:59", org=str(world.org))
    assert err.value.rule == "history_moves_forward"
    assert snapshot(world.engine) == before
    view = world.fire(case, "contact_training_org", "2026-03-02T10:00", org=str(world.org))
    assert view["state"] == T
    assert snapshot(world.engine) != before  # the comparison above would have seen a change


def test_sign_contract_needs_training_org_contact(world: Any) -> None:
    case = reach(world, S)
    before = snapshot(world.engine)
    with pytest.raises(IllegalEvent, match="contact_training_org"):
        world.fire(case, "sign_contract", LATER, **GOOD_DATA["sign_contract"])
    assert snapshot(world.engine) == before
