"""The behaviour model: salaries at least the SMIC in force (a refused one corrected), subsidies as granted."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from simulated import POLICY, SMALL
from sqlmodel import Session, col, select

from states import money
from states.clock import paris_day
from states.db import get_engine
from states.errors import RuleViolation
from states.models import Case, Structure, Tranche
from states.rules import salary_at_least_smic
from states.simulation import Outcome, make_config
from states.simulation.behaviour import Behaviour, Plan, Slot, Track, at_paris


def test_salaries_are_at_least_the_smic_and_subsidies_follow_the_rules(first: Outcome) -> None:
    with Session(get_engine(first.database_url)) as s:
        signed = s.exec(select(Case).where(col(Case.contract_start).is_not(None))).all()
        assert signed
        for case in signed:
            assert case.contract_start is not None and case.contract_type is not None
            smic = POLICY.smic_on(case.contract_start)
            assert smic is not None and (case.salary_cents or 0) >= smic.monthly_cents
            st = s.get(Structure, case.structure_id)
            assert st is not None
            grant = money.grant(
                POLICY, st.kind, st.departement, case.contract_type, case.contract_start, case.contract_end
            )
            assert case.subsidy_cents == grant.subsidy_cents
            amounts = s.exec(select(Tranche.amount_cents).where(Tranche.case_id == case.id)).all()
            assert sum(amounts) == case.subsidy_cents


def test_a_salary_refused_below_the_smic_is_corrected_and_signed_the_next_day() -> None:
    config = make_config(SMALL, 7, "2026-01-05", POLICY)
    people = Behaviour(POLICY, config)
    people.slots.append(Slot(structure=1, departement="33"))
    track = Track(case=1, slot=0, structure=1, candidate=1)
    tried = Plan(at_paris(config.start, 10), "fire", case=1, event="sign_contract", actor="structure:1")
    refusal = RuleViolation("below the SMIC", rule=salary_at_least_smic.__name__)
    people._refused(track, tried, refusal)
    [(at, _, again)] = people.heap
    assert (again.event, again.actor) == ("sign_contract", "structure:1")
    assert paris_day(at) == config.start + timedelta(days=1)
    smic = POLICY.smic_on(date.fromisoformat(again.data["start"]))
    assert smic is not None and round(Decimal(again.data["salary"]) * 100) >= smic.monthly_cents


def test_other_refusals_leave_the_people_to_the_deadlines() -> None:
    people = Behaviour(POLICY, make_config(SMALL, 7, "2026-01-05", POLICY))
    track = Track(case=1, slot=0, structure=1, candidate=1)
    tried = Plan(at_paris(people.today, 10), "fire", case=1, event="sign_contract", actor="structure:1")
    people._refused(track, tried, RuleViolation("post already filled", rule="within_quota"))
    assert people.heap == []
