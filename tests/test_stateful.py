"""Random programmes: any sequence of events, sweeps and payments keeps the programme's invariants.

Each example runs on a fresh SQLite database. Rules fire operator and internal
events with plausible and implausible data, by any actor, at instants that
mostly move forward and sometimes go back; a refused event must change nothing.
After every step the invariants below must hold for every case.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any

from helpers import migrated_database, snapshot
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlmodel import col, select

from states import batch, registry, service
from states.clock import paris_day, parse_instant, start_of_day, utc
from states.db import get_engine, read_session, write_session
from states.errors import ConumError, IllegalEvent
from states.lifecycle import ACTIVE_CONTRACT, BY_NAME, EVENTS, TERMINAL, State, allowed_events
from states.machine import is_legal
from states.models import Case, History, Structure, Tranche
from states.policy import Policy

DAY = 24 * 60
#: Moves of the clock, in minutes: mostly forward (hours to a year), sometimes back.
DELTAS = st.one_of(
    st.integers(0, 3 * DAY),
    st.integers(0, 60 * DAY),
    st.integers(0, 400 * DAY),
    st.integers(-5 * DAY, 0),
)
#: Smaller moves, between two actions of one person on one case.
STEPS = st.one_of(st.integers(0, 2 * DAY), st.integers(0, 40 * DAY), st.integers(-DAY, 0))
FORWARD = ("select", "contact_training_org", "sign_contract", "start_training", "complete_training")
ACTOR_KINDS = ["admin", "system", "structure", "other structure", "candidate", "other candidate", "prefet", "other"]
EVENT_NAMES = [e.name for e in EVENTS] + ["hire"]
INTERNAL = {e.name for e in EVENTS if e.internal}
PAY_EVENTS = {"pay_tranche", "pay_final_tranche"}


def plausible_data(draw: Any, event: str, today: date, org: int, case: Case) -> dict[str, str]:
    """Draw data the rules accept for ``event`` on ``today``."""
    if event in ("decline", "cancel"):
        return {"reason": "motif"}
    if event == "contact_training_org":
        return {"org": str(org)}
    if event == "sign_contract":
        start = today + timedelta(days=draw(st.integers(0, 10)))
        kind = draw(st.sampled_from(["CDD", "CDI", "PEC", "contrat_de_projet"]))
        data = {"type": kind, "start": start.isoformat(), "salary": "1900.00"}
        if kind != "CDI":
            data["end"] = (start + timedelta(days=draw(st.integers(60, 900)))).isoformat()
        return data
    if event == "break_contract":
        end = case.contract_end or today
        return {"reason": draw(st.sampled_from(["licenciement", "demission"])), "date": min(today, end).isoformat()}
    return {}


def event_data(draw: Any, event: str, today: date, org: int) -> dict[str, str]:
    """Draw data for ``event``: often what the rules accept, sometimes not."""

    def day(low: int, high: int) -> str:
        return (today + timedelta(days=draw(st.integers(low, high)))).isoformat()

    data: dict[str, Any] = {}
    if event in ("decline", "cancel", "withdraw"):
        data["reason"] = draw(st.sampled_from(["profil éloigné", "", "doublon"]))
    elif event == "contact_training_org":
        data["org"] = draw(st.sampled_from([str(org), str(org), "99", "abc"]))
    elif event == "sign_contract":
        start = today + timedelta(days=draw(st.integers(-20, 60)))
        kind = draw(st.sampled_from(["CDD", "CDD", "CDI", "PEC", "contrat_de_projet", "interim"]))
        data = {"type": kind, "start": start.isoformat(), "salary": draw(st.sampled_from(["1900.00", "1700", "x"]))}
        if draw(st.booleans()) if kind == "CDI" else draw(st.integers(0, 5)) > 0:
            data["end"] = (start + timedelta(days=draw(st.integers(-10, 1000)))).isoformat()
    elif event in ("start_training", "complete_training"):
        if draw(st.booleans()):
            data["date"] = day(-150, 2)
    elif event == "break_contract":
        data["reason"] = draw(st.sampled_from(["licenciement", "demission", "non_reconduction_cdd", "faute"]))
        data["date"] = day(-400, 2)
    if draw(st.integers(0, 9)) == 0:
        data["colour"] = "bleu"
    return data


class Programme(RuleBasedStateMachine):
    """A small programme: two structures (one post, two posts), four candidates, one training organisation."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="conum-stateful-")
        shutil.copy(migrated_database(), f"{self.dir}/conum.db")
        self.engine = get_engine(f"sqlite:///{self.dir}/conum.db")
        self.policy = Policy()
        self.now = parse_instant("2026-03-01T09:00")
        with write_session(self.engine) as s:
            self.org = registry.add_training_org(s, name="Simplon.co")
            self.structures = [
                registry.add_structure(s, name="Médiathèque", departement="33", posts=1),
                registry.add_structure(s, name="Association", departement="974", posts=2, kind="private"),
            ]
            self.candidates = [
                registry.add_candidate(s, name=f"Candidat {i}", email=f"c{i}@exemple.fr") for i in range(4)
            ]
        self.cases: list[int] = []
        self.seen: dict[int, tuple[int, int]] = {}  # case -> (version, history rows)
        self.rows: dict[str, list[tuple[Any, ...]]] | None = None  # the database's rows, while known

    def teardown(self) -> None:
        self.engine.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)

    def instant(self, delta: int) -> datetime:
        """Return the instant of the next action: forward moves the clock, backward does not."""
        at = self.now + timedelta(minutes=delta)
        self.now = max(self.now, at)
        return at

    def attempt(self, action: Any, refusal: type[ConumError] = ConumError, must_refuse: bool = False) -> None:
        """Run ``action``; if it is refused, check the database did not change."""
        before = self.rows if self.rows is not None else snapshot(self.engine)
        try:
            action()
        except refusal:
            self.rows = snapshot(self.engine)
            assert self.rows == before, "a refused action changed the database"
            return
        assert not must_refuse, "an internal event was fired without the internal flag"
        self.rows = None

    # ------------------------------------------------------------ rules

    @initialize(pairs=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 3)), min_size=2, max_size=5, unique=True))
    def open_cases(self, pairs: list[tuple[int, int]]) -> None:
        for structure, candidate in pairs:
            self.present(structure, candidate, 0)

    @precondition(lambda self: len(self.cases) < 8)
    @rule(structure=st.integers(0, 1), candidate=st.integers(0, 3), delta=DELTAS)
    def present(self, structure: int, candidate: int, delta: int) -> None:
        at = self.instant(delta)

        def act() -> None:
            with write_session(self.engine) as s:
                case = service.present(
                    s, self.structures[structure], self.candidates[candidate], at=at, policy=self.policy
                )
                self.cases.append(case.id or 0)

        self.attempt(act)

    def actor_for(self, case: Case, kind: str) -> str:
        with read_session(self.engine) as s:
            structure = s.get(Structure, case.structure_id)
            assert structure is not None
        return {
            "admin": "admin",
            "system": "system",
            "structure": f"structure:{case.structure_id}",
            "other structure": f"structure:{case.structure_id % 2 + 1}",
            "candidate": f"candidate:{case.candidate_id}",
            "other candidate": f"candidate:{case.candidate_id % 4 + 1}",
            "prefet": f"prefet:{structure.departement}",
            "other": "prefet:75",
        }[kind]

    def case(self, pick: int) -> Case:
        with read_session(self.engine) as s:
            case = s.get(Case, self.cases[pick % len(self.cases)])
            assert case is not None
            return case

    def fire_checked(self, case_id: int, event: str, actor: str, at: datetime, data: dict[str, str]) -> None:
        """Fire through the public service; a refusal (or any internal event) must change nothing."""

        def act() -> None:
            with write_session(self.engine) as s:
                service.fire(s, case_id, event, actor=actor, at=at, data=data, policy=self.policy)

        if event in INTERNAL:
            self.attempt(act, IllegalEvent, must_refuse=True)
        else:
            self.attempt(act)

    @precondition(lambda self: self.cases)
    @rule(pick=st.integers(0, 1000), steps=st.integers(1, 8), draw=st.data())
    def walk(self, pick: int, steps: int, draw: st.DataObject) -> None:
        """Move a case on as its structure or the admin would, mostly forward; once in post, run the payments."""
        for _ in range(steps):
            case = self.case(pick)
            if case.state == State.IN_POST and draw.draw(st.integers(0, 3)) > 0:
                self.pay(draw.draw(st.one_of(st.integers(0, 2 * DAY), st.integers(0, 400 * DAY))))
                continue
            allowed = [e for e in allowed_events(case.state) if e != "time_out"]
            forward = [e for e in allowed if e in FORWARD]
            if forward and draw.draw(st.integers(0, 9)) > 0:
                event = forward[0]
            elif allowed:
                event = draw.draw(st.sampled_from(allowed))
            else:
                return
            kind = draw.draw(st.sampled_from(BY_NAME[event].who))
            at = self.instant(draw.draw(STEPS))
            if event == "start_training" and case.contract_start and paris_day(at) < case.contract_start:
                at = self.instant(int((start_of_day(case.contract_start) - at).total_seconds() // 60) + 10 * 60)
            data = plausible_data(draw.draw, event, paris_day(at), self.org, case)
            self.fire_checked(case.id or 0, event, self.actor_for(case, kind), at, data)

    @precondition(lambda self: self.cases)
    @rule(
        pick=st.integers(0, 1000),
        event=st.sampled_from(EVENT_NAMES),
        actor_kind=st.sampled_from(ACTOR_KINDS),
        delta=DELTAS,
        draw=st.data(),
    )
    def fire_anything(self, pick: int, event: str, actor_kind: str, delta: int, draw: st.DataObject) -> None:
        """Fire any event, by any actor, with any data."""
        case = self.case(pick)
        at = self.instant(delta)
        data = event_data(draw.draw, event, paris_day(at), self.org)
        self.fire_checked(case.id or 0, event, self.actor_for(case, actor_kind), at, data)

    @rule(delta=DELTAS)
    def sweep(self, delta: int) -> None:
        report = batch.sweep(self.engine, self.instant(delta), self.policy)
        self.rows = None
        assert report.failures == {}

    @rule(delta=DELTAS)
    def pay(self, delta: int) -> None:
        report = batch.pay(self.engine, self.instant(delta), self.policy)
        self.rows = None
        assert report.failures == {}

    # ------------------------------------------------------------ invariants

    @invariant()
    def programme_holds(self) -> None:
        with read_session(self.engine) as s:
            cases = s.exec(select(Case).order_by(col(Case.id))).all()
            rows = s.exec(select(History).order_by(col(History.id))).all()
            tranches = s.exec(select(Tranche).order_by(col(Tranche.number))).all()
            posts = {row.id: row.posts for row in s.exec(select(Structure)).all()}
        history: dict[int, list[History]] = {}
        for h in rows:
            history.setdefault(h.case_id, []).append(h)
        plans: dict[int, list[Tranche]] = {}
        for t in tranches:
            plans.setdefault(t.case_id, []).append(t)
        payments = Counter(h.data["tranche_id"] for h in rows if h.event in PAY_EVENTS)
        for case in cases:
            self.check_history(case, history[case.id or 0])
            self.check_money(case, plans.get(case.id or 0, []), payments)
        active = [c for c in cases if State(c.state) in ACTIVE_CONTRACT]
        assert max(Counter(c.candidate_id for c in active).values(), default=0) <= 1, "a candidate has two contracts"
        for structure, n in Counter(c.structure_id for c in active).items():
            assert n <= posts[structure], f"structure {structure} is over its quota"

    def check_history(self, case: Case, steps: list[History]) -> None:
        """The history replays through the table, chains, ends in the stored state; versions only grow."""
        state = State(case.state)
        first = steps[0]
        assert (first.event, first.from_state, first.to_state) == ("present", None, State.CANDIDATE_PRESENTED)
        for before, after in pairwise(steps):
            assert after.from_state == before.to_state
            assert utc(after.at) >= utc(before.at)
        for h in steps:
            assert is_legal(h.event, h.from_state, h.to_state), (h.event, h.from_state, h.to_state)
            if h.event in INTERNAL or h.event == "time_out":
                assert h.actor == "system"
        assert steps[-1].to_state == state
        assert utc(case.last_at) == utc(steps[-1].at)
        version, count = self.seen.get(case.id or 0, (0, 0))
        if len(steps) > count:
            assert case.version > version
        else:
            assert (case.version, len(steps)) == (version, count)
        self.seen[case.id or 0] = (case.version, len(steps))
        if state in TERMINAL:
            assert (case.due_at, case.deadline_at) == (None, None)

    def check_money(self, case: Case, plan: list[Tranche], payments: Counter[int]) -> None:
        """Tranches add up to the subsidy, each is paid at most once, and never more than the subsidy."""
        state = State(case.state)
        if case.subsidy_cents is None:
            assert plan == []
            return
        assert [t.number for t in plan] == [1, 2, 3]
        assert sum(t.amount_cents for t in plan) == case.subsidy_cents
        paid = sum(t.amount_cents for t in plan if t.status == "paid")
        assert paid <= case.subsidy_cents
        assert 0 <= case.recovery_cents <= paid
        for t in plan:
            assert payments[t.id or 0] == (1 if t.status == "paid" else 0)
        if state is State.TRANCHES_PAID:
            assert {t.status for t in plan} == {"paid"}
        if state in (State.BROKEN, State.CANCELLED):
            assert "scheduled" not in {t.status for t in plan}
        if state in ACTIVE_CONTRACT - {State.IN_POST}:
            assert paid == 0


Programme.TestCase.settings = settings(
    max_examples=20,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestProgramme = Programme.TestCase
