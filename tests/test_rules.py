"""Programme rules: SMIC, contract types and dates, quota, one contract per candidate, ruptures, training dates.

Each refusal must name its rule, say what to do and leave the database as it was.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from helpers import snapshot

from states.errors import BadInput, ConumError, RuleViolation
from states.views import get_case


def contacted(world: Any, structure: int | None = None, candidate: int | None = None, year: int = 2026) -> int:
    """Return a case walked up to training_org_contacted, early in October of ``year``."""
    s = structure or world.structure()
    k = candidate or world.candidate()
    case = world.present(s, k, at=f"{year}-10-01T10:00")
    world.fire(case, "select", f"{year}-10-02T10:00")
    world.fire(case, "contact_training_org", f"{year}-10-03T10:00", org=str(world.org))
    return case


def sign(world: Any, case: int, at: str = "2026-10-04T10:00", **data: str) -> dict:
    contract = {"type": "CDD", "start": "2026-11-02", "end": "2028-11-01", "salary": "1900.00"}
    contract.update(data)
    return world.fire(case, "sign_contract", at, **{k: v for k, v in contract.items() if v is not None})


def refused(world: Any, error: type[ConumError], rule: str | None, call: Any, *args: Any, **kwargs: Any) -> str:
    """Run a refused action; check it names ``rule`` and changed nothing; return its message."""
    before = snapshot(world.engine)
    with pytest.raises(error) as err:
        call(*args, **kwargs)
    if rule is not None:
        assert err.value.rule == rule
    assert snapshot(world.engine) == before
    return str(err.value)


# ---------------------------------------------------------------- SMIC


@pytest.mark.parametrize(
    ("start", "salary", "accepted"),
    [
        ("2024-01-01", "1766.92", True),  # exactly the SMIC of 2024-01-01
        ("2024-01-01", "1766.91", False),
        ("2024-10-31", "1790.00", True),  # the last day of the 2024-01-01 rate
        ("2024-11-01", "1790.00", False),  # the 2024-11-01 rate is in force
        ("2024-11-01", "1801.80", True),
        ("2024-11-01", "1801.79", False),
    ],
)
def test_salary_at_least_smic_in_force_on_contract_start(world: Any, start: str, salary: str, accepted: bool) -> None:
    case = contacted(world, year=2023)
    end = f"{int(start[:4]) + 1}{start[4:]}"
    at = "2024-10-01T10:00"
    if accepted:
        view = sign(world, case, at=at, start=start, end=end, salary=salary)
        assert view["state"] == "contract_signed"
        assert view["contract"]["salary_cents"] == int(salary.replace(".", ""))
    else:
        message = refused(
            world, RuleViolation, "salary_at_least_smic", sign, world, case, at=at, start=start, end=end, salary=salary
        )
        floor = "1801.80" if start >= "2024-11-01" else "1766.92"
        assert f"{floor} €" in message
        assert "at least the SMIC" in message


# ---------------------------------------------------------------- contract types and dates


@pytest.mark.parametrize("kind", ["CDI", "CDD", "PEC", "contrat_de_projet"])
def test_programme_contract_types_are_accepted(world: Any, kind: str) -> None:
    end = None if kind == "CDI" else "2027-11-01"
    view = sign(world, contacted(world), type=kind, end=end)
    assert view["contract"]["type"] == kind
    assert view["contract"]["end"] == end


@pytest.mark.parametrize("kind", ["interim", "CDDI", "cdd", "stage", "contrat d'apprentissage"])
def test_other_contract_types_are_refused(world: Any, kind: str) -> None:
    case = contacted(world)
    message = refused(world, RuleViolation, "contract_type_allowed", sign, world, case, type=kind)
    assert "CDI, CDD, PEC, contrat_de_projet" in message


@pytest.mark.parametrize("kind", ["CDD", "PEC", "contrat_de_projet"])
def test_fixed_term_contract_needs_an_end_date(world: Any, kind: str) -> None:
    case = contacted(world)
    message = refused(world, RuleViolation, "contract_dates_valid", sign, world, case, type=kind, end=None)
    assert "add --set end=" in message


def test_cdi_has_no_end_date(world: Any) -> None:
    case = contacted(world)
    message = refused(world, RuleViolation, "contract_dates_valid", sign, world, case, type="CDI", end="2028-11-01")
    assert "drop 'end'" in message


@pytest.mark.parametrize("end", ["2026-11-02", "2026-11-01", "2025-01-01"])
def test_contract_end_must_be_after_its_start(world: Any, end: str) -> None:
    case = contacted(world)
    message = refused(world, RuleViolation, "contract_dates_valid", sign, world, case, start="2026-11-02", end=end)
    assert "give an end after the start" in message


def test_contract_shorter_than_one_whole_month_is_refused(world: Any) -> None:
    case = contacted(world)
    before = snapshot(world.engine)
    with pytest.raises(RuleViolation, match="one whole month"):
        sign(world, case, start="2026-11-02", end="2026-11-30")
    assert snapshot(world.engine) == before


def test_contract_of_exactly_one_month_is_accepted_and_funded_one_month(world: Any) -> None:
    view = sign(world, contacted(world), start="2026-11-02", end="2026-12-01")
    assert (view["contract"]["end"], view["contract"]["funded_months"]) == ("2026-12-01", 1)
    assert view["subsidy_cents"] == 5_000_000 // 24


# ---------------------------------------------------------------- quota


def test_active_contracts_never_exceed_the_posts(world: Any) -> None:
    s = world.structure(posts=2)
    first, second, third = (contacted(world, structure=s) for _ in range(3))
    sign(world, first)
    sign(world, second)
    message = refused(world, RuleViolation, "within_quota", sign, world, third)
    assert "2 active contract(s) for 2 post(s)" in message
    assert get_case(world.engine, third)["state"] == "training_org_contacted"


@pytest.mark.parametrize(
    ("ending", "data"),
    [
        ("break_contract", {"reason": "demission", "date": "2026-11-20"}),
        ("cancel", {"reason": "convention résiliée"}),
    ],
)
def test_ended_contract_frees_its_post(world: Any, ending: str, data: dict[str, str]) -> None:
    s = world.structure(posts=1)
    holder, waiting = contacted(world, structure=s), contacted(world, structure=s)
    sign(world, holder)
    refused(world, RuleViolation, "within_quota", sign, world, waiting, at="2026-11-20T10:00")
    world.fire(holder, ending, "2026-11-20T10:00", **data)
    assert sign(world, waiting, at="2026-11-20T11:00")["state"] == "contract_signed"


def test_structure_may_have_more_open_cases_than_posts(world: Any) -> None:
    s = world.structure(posts=1)
    cases = [contacted(world, structure=s) for _ in range(3)]
    assert {get_case(world.engine, c)["state"] for c in cases} == {"training_org_contacted"}


# ---------------------------------------------------------------- one contract per candidate


def test_signed_contract_withdraws_the_candidates_other_open_cases(world: Any) -> None:
    k = world.candidate()
    signed = contacted(world, candidate=k)
    presented = world.present(world.structure(), k, at="2026-10-01T11:00")
    selected = world.present(world.structure(), k, at="2026-10-01T12:00")
    world.fire(selected, "select", "2026-10-02T11:00")
    elsewhere = world.present(world.structure(), world.candidate(), at="2026-10-01T13:00")
    sign(world, signed)
    for other in (presented, selected):
        view = get_case(world.engine, other)
        assert view["state"] == "withdrawn"
        last = view["history"][-1]
        assert (last["event"], last["actor"]) == ("withdraw", "system")
        assert re.search(rf"\b{signed}\b", last["data"]["reason"])
    assert get_case(world.engine, elsewhere)["state"] == "candidate_presented"


def test_candidate_under_contract_cannot_be_presented(world: Any) -> None:
    k = world.candidate()
    sign(world, contacted(world, candidate=k))
    s = world.structure()
    with_contract = refused(world, RuleViolation, "candidate_free", world.present, s, k, at="2026-10-05T10:00")
    assert "present another candidate" in with_contract


def test_candidate_returns_to_the_pool_after_a_rupture(world: Any) -> None:
    k = world.candidate()
    case = contacted(world, candidate=k)
    sign(world, case)
    world.fire(case, "break_contract", "2026-12-01T10:00", reason="licenciement", date="2026-12-01")
    again = world.present(world.structure(), k, at="2026-12-02T10:00")
    assert get_case(world.engine, again)["state"] == "candidate_presented"


def test_candidate_is_presented_once_per_structure(world: Any) -> None:
    s, k = world.structure(), world.candidate()
    world.present(s, k)
    message = refused(world, RuleViolation, "not_presented_twice", world.present, s, k, at="2026-03-01T11:00")
    assert "follow that case" in message


# ---------------------------------------------------------------- ruptures


@pytest.fixture
def under_contract(world: Any) -> int:
    """A CDD from 2026-11-02 to 2027-11-01, signed on 2026-10-04."""
    case = contacted(world)
    sign(world, case, start="2026-11-02", end="2027-11-01")
    return case


@pytest.mark.parametrize("reason", ["licenciement", "demission", "non_reconduction_cdd", "fin_de_subventionnement"])
def test_rupture_with_a_programme_reason_is_recorded(world: Any, under_contract: int, reason: str) -> None:
    view = world.fire(under_contract, "break_contract", "2027-03-01T10:00", reason=reason, date="2027-02-28")
    assert view["state"] == "broken"
    assert view["history"][-1]["data"] == {"reason": reason, "date": "2027-02-28"}


@pytest.mark.parametrize("reason", ["faute grave", "retraite", "DEMISSION"])
def test_rupture_with_another_reason_is_refused(world: Any, under_contract: int, reason: str) -> None:
    message = refused(
        world,
        RuleViolation,
        "rupture_reason_allowed",
        world.fire,
        under_contract,
        "break_contract",
        "2027-03-01T10:00",
        reason=reason,
        date="2027-02-28",
    )
    assert "licenciement, demission, non_reconduction_cdd, fin_de_subventionnement" in message


@pytest.mark.parametrize(("day", "at"), [("2026-11-02", "2026-11-02T10:00"), ("2027-11-01", "2027-12-01T10:00")])
def test_rupture_on_the_first_or_last_day_of_the_contract_is_accepted(
    world: Any, under_contract: int, day: str, at: str
) -> None:
    view = world.fire(under_contract, "break_contract", at, reason="demission", date=day)
    assert view["state"] == "broken"


@pytest.mark.parametrize(
    ("day", "at", "hint"),
    [
        ("2026-11-01", "2026-11-05T10:00", "give a date within the contract"),  # before the start
        ("2027-11-02", "2027-12-01T10:00", "give a date within the contract"),  # after the end
        ("2027-03-02", "2027-03-01T10:00", "once it happened"),  # after the day it is recorded
    ],
)
def test_rupture_date_outside_the_contract_is_refused(
    world: Any, under_contract: int, day: str, at: str, hint: str
) -> None:
    message = refused(
        world,
        RuleViolation,
        "rupture_within_contract",
        world.fire,
        under_contract,
        "break_contract",
        at,
        reason="demission",
        date=day,
    )
    assert hint in message


# ---------------------------------------------------------------- training dates


def test_training_cannot_start_before_the_contract(world: Any, under_contract: int) -> None:
    message = refused(
        world,
        RuleViolation,
        "training_dates_valid",
        world.fire,
        under_contract,
        "start_training",
        "2026-11-05T10:00",
        date="2026-11-01",
    )
    assert "before the contract start 2026-11-02" in message
    view = world.fire(under_contract, "start_training", "2026-11-05T10:00", date="2026-11-02")
    assert view["state"] == "in_training"


def test_training_cannot_complete_before_it_started(world: Any, under_contract: int) -> None:
    world.fire(under_contract, "start_training", "2026-11-10T10:00", date="2026-11-09")
    message = refused(
        world,
        RuleViolation,
        "training_dates_valid",
        world.fire,
        under_contract,
        "complete_training",
        "2027-03-10T10:00",
        date="2026-11-08",
    )
    assert "before the training start 2026-11-09" in message


def test_training_date_cannot_be_in_the_future(world: Any, under_contract: int) -> None:
    message = refused(
        world,
        RuleViolation,
        "training_dates_valid",
        world.fire,
        under_contract,
        "start_training",
        "2026-11-05T10:00",
        date="2026-11-06",
    )
    assert "once it happened" in message


def test_training_without_a_date_starts_on_the_day_of_the_event(world: Any, under_contract: int) -> None:
    world.fire(under_contract, "start_training", "2026-11-16T23:30")
    view = world.fire(under_contract, "complete_training", "2027-03-16T09:00")
    assert view["state"] == "in_post"
    assert view["tranches"][0]["due_on"] == "2027-03-16"


# ---------------------------------------------------------------- event data


@pytest.mark.parametrize(
    ("event", "data", "hint"),
    [
        ("sign_contract", {"type": "CDD", "start": "2026-11-02", "end": "2028-11-01"}, "add --set salary=…"),
        ("sign_contract", {"start": "2026-11-02", "salary": "1900"}, "add --set type=…"),
        ("decline", {}, "add --set reason=…"),
        ("cancel", {"reason": "  "}, "give a value"),
    ],
)
def test_missing_data_is_refused_with_the_keys_to_add(world: Any, event: str, data: dict[str, str], hint: str) -> None:
    case = contacted(world) if event == "sign_contract" else world.present(world.structure(), world.candidate())
    message = refused(world, BadInput, None, world.fire, case, event, "2026-10-04T10:00", **data)
    assert hint in message


def test_unknown_data_key_is_refused_with_the_accepted_keys(world: Any) -> None:
    case = contacted(world)
    message = refused(
        world,
        BadInput,
        None,
        world.fire,
        case,
        "sign_contract",
        "2026-10-04T10:00",
        type="CDD",
        start="2026-11-02",
        end="2028-11-01",
        salary="1900",
        hours="35",
    )
    assert "hours" in message
    assert "end, salary, start, type" in message


@pytest.mark.parametrize(
    ("key", "value", "hint"),
    [
        ("salary", "mille", "such as 1850.00"),
        ("salary", "1900.001", "at most 2 decimals"),
        ("salary", "-1900", "positive amount"),
        ("start", "2026-13-01", "YYYY-MM-DD"),
        ("end", "01/11/2028", "YYYY-MM-DD"),
    ],
)
def test_malformed_contract_value_is_refused(world: Any, key: str, value: str, hint: str) -> None:
    case = contacted(world)
    message = refused(world, BadInput, None, sign, world, case, **{key: value})
    assert hint in message


def test_salary_with_a_decimal_comma_is_read_in_euros(world: Any) -> None:
    view = sign(world, contacted(world), salary="1900,50")
    assert view["contract"]["salary_cents"] == 190_050


def test_contact_needs_an_approved_training_org(world: Any) -> None:
    case = world.present(world.structure(), world.candidate())
    world.fire(case, "select", "2026-03-02T10:00")
    message = refused(
        world,
        RuleViolation,
        "known_training_org",
        world.fire,
        case,
        "contact_training_org",
        "2026-03-03T10:00",
        org="99",
    )
    assert "conum training-org add" in message


@pytest.mark.parametrize("salary", ["1e4", "NaN", "-1900", "1900.001", "mille"])
def test_salary_must_be_written_as_euros_and_cents(world: Any, salary: str) -> None:
    case = contacted(world)
    before = snapshot(world.engine)
    with pytest.raises(BadInput, match="amount in euros"):
        sign(world, case, salary=salary)
    assert snapshot(world.engine) == before
