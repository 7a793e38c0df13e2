"""Money to the cent: subsidy bases, modulation by contract months, the three tranches and their due dates."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given
from hypothesis import strategies as st

from states import money
from states.policy import Policy, Subsidy
from states.views import get_case

OVERSEAS = ["971", "972", "973", "974", "975", "976", "977", "978", "986", "987", "988"]


def signed(world: Any, structure_kind: str = "public", departement: str = "33", **contract: Any) -> dict:
    """Return the view of a case signed with ``contract`` (kind, start, end) in a new structure."""
    s = world.structure(kind=structure_kind, departement=departement)
    case = world.signed(s, world.candidate(), **contract)
    return get_case(world.engine, case)


def floor_share(amount: int, percent: int) -> int:
    """The share of ``amount`` in cents, rounded down to the cent (computed in Decimal, not as the core does)."""
    return int((Decimal(amount) * Decimal(percent) / Decimal(100)).to_integral_value(rounding=ROUND_DOWN))


# ---------------------------------------------------------------- bases


@pytest.mark.parametrize(
    ("kind", "departement", "euros"),
    [("public", "33", 50_000), ("private", "33", 40_000), ("public", "2A", 50_000), ("private", "75", 40_000)]
    + [("public", d, 70_000) for d in OVERSEAS],
)
def test_full_subsidy_depends_on_structure_kind_and_overseas(
    world: Any, kind: str, departement: str, euros: int
) -> None:
    view = signed(world, kind, departement, start="2026-04-01", end="2028-03-31")
    assert view["contract"]["funded_months"] == 24
    assert view["subsidy_cents"] == euros * 100
    assert sum(t["amount_cents"] for t in view["tranches"]) == euros * 100


# ---------------------------------------------------------------- modulation


def test_six_month_contract_earns_a_quarter_of_the_subsidy(world: Any) -> None:
    view = signed(world, start="2026-03-01", end="2026-08-31")
    assert view["contract"]["funded_months"] == 6
    assert view["subsidy_cents"] == 1_250_000  # 12,500.00 €


def test_partial_month_is_not_funded(world: Any) -> None:
    view = signed(world, "private", start="2026-03-01", end="2026-09-29")
    assert view["contract"]["funded_months"] == 6
    assert view["subsidy_cents"] == 1_000_000  # 40,000 € × 6 / 24


def test_cdi_counts_the_full_funded_period(world: Any) -> None:
    view = signed(world, "private", start="2026-04-01", end=None, kind="CDI")
    assert view["contract"]["type"] == "CDI"
    assert view["contract"]["funded_months"] == 24
    assert view["subsidy_cents"] == 4_000_000
    assert [t["due_on"] for t in view["tranches"]] == [None, "2027-04-01", "2028-03-31"]


def test_contract_longer_than_the_funded_period_is_capped(world: Any) -> None:
    view = signed(world, start="2026-04-01", end="2029-03-31")
    assert view["contract"]["funded_months"] == 24
    assert view["subsidy_cents"] == 5_000_000
    assert [t["due_on"] for t in view["tranches"]] == [None, "2027-04-01", "2028-03-31"]


def test_seven_month_contract_splits_to_the_cent(world: Any) -> None:
    view = signed(world, start="2026-04-01", end="2026-10-31")
    # 50,000 € × 7 / 24 = 14,583.33 €; 40 % and 30 % rounded down, the last takes the remainder
    assert view["subsidy_cents"] == 1_458_333
    assert [t["amount_cents"] for t in view["tranches"]] == [583_333, 437_499, 437_501]
    assert all(type(t["amount_cents"]) is int for t in view["tranches"])


# ---------------------------------------------------------------- due dates


def test_first_tranche_is_due_when_the_conseiller_takes_post(world: Any) -> None:
    view = signed(world, start="2026-04-01", end="2028-03-31")
    assert view["tranches"][0]["due_on"] is None
    world.fire(view["id"], "start_training", "2026-04-02T09:00", date="2026-04-02")
    assert get_case(world.engine, view["id"])["tranches"][0]["due_on"] is None
    after = world.fire(view["id"], "complete_training", "2026-08-04T09:00", date="2026-08-03")
    assert after["tranches"][0]["due_on"] == "2026-08-03"


@pytest.mark.parametrize(
    ("start", "end", "second", "third"),
    [
        ("2026-04-01", "2028-03-31", "2027-04-01", "2028-03-31"),  # 24 months: 12 months after start
        ("2026-03-01", "2026-08-31", "2026-08-31", "2026-08-31"),  # 6 months: capped at the funded end
        ("2026-04-01", "2027-03-31", "2027-03-31", "2027-03-31"),  # 12 months: the 12th month ends the day before
        ("2026-04-15", "2027-07-20", "2027-04-15", "2027-07-14"),  # 15 whole months, partial month dropped
    ],
)
def test_second_and_third_tranche_due_dates(world: Any, start: str, end: str, second: str, third: str) -> None:
    view = signed(world, start=start, end=end)
    assert [t["due_on"] for t in view["tranches"][1:]] == [second, third]


# ---------------------------------------------------------------- properties


@given(subsidy=st.integers(min_value=0, max_value=10**10))
def test_three_tranches_add_up_to_the_subsidy(subsidy: int) -> None:
    first, second, third = money.split(Policy(), subsidy)
    assert (first, second) == (floor_share(subsidy, 40), floor_share(subsidy, 30))
    assert first + second + third == subsidy
    assert 0 <= third - floor_share(subsidy, 30) <= 2


@given(
    shares=st.tuples(st.integers(0, 100), st.integers(0, 100)).filter(lambda p: sum(p) <= 100),
    subsidy=st.integers(min_value=0, max_value=10**10),
)
def test_any_split_of_the_policy_adds_up_to_the_subsidy(shares: tuple[int, int], subsidy: int) -> None:
    p1, p2 = shares
    policy = Policy(subsidy=Subsidy(tranche_percents=[p1, p2, 100 - p1 - p2]))
    first, second, third = money.split(policy, subsidy)
    assert (first, second) == (floor_share(subsidy, p1), floor_share(subsidy, p2))
    assert first + second + third == subsidy
    assert third >= 0


@given(
    base=st.integers(min_value=1, max_value=10**9),
    kind=st.sampled_from(["public", "private"]),
    start=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)).filter(lambda d: d.day <= 28),
    months=st.integers(min_value=1, max_value=48),
    extra_days=st.integers(min_value=0, max_value=27),
    contract_type=st.sampled_from(["CDD", "PEC", "contrat_de_projet", "CDI"]),
)
def test_grant_is_modulated_by_whole_months_and_split_to_the_cent(
    base: int, kind: str, start: date, months: int, extra_days: int, contract_type: str
) -> None:
    policy = Policy(subsidy=Subsidy(public_cents=base, private_cents=base))
    end = start + relativedelta(months=months) - timedelta(days=1) + timedelta(days=extra_days)
    g = money.grant(policy, kind, "33", contract_type, start, None if contract_type == "CDI" else end)
    funded = 24 if contract_type == "CDI" else min(months, 24)
    assert g.funded_months == funded
    assert g.subsidy_cents == int((Decimal(base) * funded / 24).to_integral_value(rounding=ROUND_DOWN))
    assert sum(g.amounts) == g.subsidy_cents
    assert all(type(a) is int and a >= 0 for a in g.amounts)
    funded_end = start + relativedelta(months=funded) - timedelta(days=1)
    assert g.third_due == funded_end
    assert g.second_due == min(start + relativedelta(months=12), funded_end)
    if contract_type != "CDI":
        assert g.third_due <= end
