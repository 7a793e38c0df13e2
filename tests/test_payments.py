"""Payments: each tranche paid once while in post; a rupture cancels the rest and computes what to recover."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import col, select

from states import batch
from states.clock import parse_instant
from states.db import read_session
from states.models import Outbox
from states.views import get_case

SUBSIDY = 5_000_000  # a public structure, 24 funded months
TRANCHES = [2_000_000, 1_500_000, 1_500_000]


@pytest.fixture
def in_post(world: Any) -> int:
    """A public CDD from 2026-04-01 to 2028-03-31, trained from 2026-04-01, in post on 2026-08-03."""
    case = world.signed(start="2026-04-01", end="2028-03-31")
    world.fire(case, "start_training", "2026-04-01T10:00", date="2026-04-01")
    world.fire(case, "complete_training", "2026-08-03T10:00", date="2026-08-03")
    return case


def pay(world: Any, at: str) -> list[tuple[int, int, int]]:
    """Run the payments at ``at``; return (case, tranche number, amount) of each payment made."""
    report = batch.pay(world.engine, parse_instant(at), world.policy)
    assert report.failures == {}
    return [(p.case_id, p.number, p.amount_cents) for p in report.payments]


def statuses(world: Any, case: int) -> list[str]:
    return [t["status"] for t in get_case(world.engine, case)["tranches"]]


def notices(world: Any, case: int, kind: str) -> list[dict]:
    with read_session(world.engine) as s:
        rows = s.exec(select(Outbox).where(Outbox.case_id == case, Outbox.kind == kind).order_by(col(Outbox.id)))
        return [r.payload | {"recipient": r.recipient} for r in rows]


def test_tranches_are_paid_once_each_when_due(world: Any, in_post: int) -> None:
    runs = [
        ("2026-08-03T12:00", [(in_post, 1, TRANCHES[0])]),  # on taking post
        ("2026-08-03T12:00", []),
        ("2027-03-31T23:59", []),
        ("2027-04-01T00:00", [(in_post, 2, TRANCHES[1])]),  # 12 months after the contract start
        ("2027-04-01T08:00", []),
        ("2028-03-30T23:59", []),
        ("2028-03-31T00:00", [(in_post, 3, TRANCHES[2])]),  # the end of the funded period
        ("2028-06-01T00:00", []),
    ]
    for at, expected in runs:
        assert pay(world, at) == expected, at
    view = get_case(world.engine, in_post)
    assert view["state"] == "tranches_paid"
    assert statuses(world, in_post) == ["paid", "paid", "paid"]
    payments = [h for h in view["history"] if h["event"].startswith("pay_")]
    assert [(h["event"], h["actor"], h["to"]) for h in payments] == [
        ("pay_tranche", "system", "in_post"),
        ("pay_tranche", "system", "in_post"),
        ("pay_final_tranche", "system", "tranches_paid"),
    ]
    orders = notices(world, in_post, "payment_order")
    assert [(o["tranche_number"], o["amount_cents"], o["recipient"]) for o in orders] == [
        (1, TRANCHES[0], "payment"),
        (2, TRANCHES[1], "payment"),
        (3, TRANCHES[2], "payment"),
    ]
    assert sum(o["amount_cents"] for o in orders) == SUBSIDY
    assert len(notices(world, in_post, "tranche_paid")) == 2
    assert [n["tranche_number"] for n in notices(world, in_post, "final_tranche_paid")] == [3]  # the subsidy is paid


def test_late_run_pays_every_due_tranche_in_order_and_closes_the_case(world: Any, in_post: int) -> None:
    assert pay(world, "2028-04-01T09:00") == [(in_post, n, a) for n, a in enumerate(TRANCHES, start=1)]
    assert get_case(world.engine, in_post)["state"] == "tranches_paid"
    assert pay(world, "2028-04-01T09:00") == []


def test_only_the_last_tranche_is_reported_final(world: Any, in_post: int) -> None:
    report = batch.pay(world.engine, parse_instant("2028-04-01T09:00"), world.policy)
    assert [(p.number, p.final) for p in report.payments] == [(1, False), (2, False), (3, True)]


def test_tranches_are_paid_only_in_post(world: Any) -> None:
    case = world.signed(start="2026-04-01", end="2026-09-30")  # 6 months: tranches 2 and 3 due on 2026-09-30
    world.fire(case, "start_training", "2026-04-01T10:00", date="2026-04-01")
    assert pay(world, "2026-10-01T10:00") == []
    assert statuses(world, case) == ["scheduled"] * 3
    world.fire(case, "complete_training", "2026-10-02T10:00", date="2026-10-02")
    amounts = [t["amount_cents"] for t in get_case(world.engine, case)["tranches"]]
    assert pay(world, "2026-10-02T11:00") == [(case, n, a) for n, a in enumerate(amounts, start=1)]
    assert sum(amounts) == SUBSIDY // 4


def test_pay_run_skips_cases_not_in_post(world: Any, in_post: int) -> None:
    waiting = world.signed(start="2026-04-01", end="2028-03-31")
    assert pay(world, "2026-08-04T10:00") == [(in_post, 1, TRANCHES[0])]
    assert statuses(world, waiting) == ["scheduled"] * 3


@pytest.mark.parametrize(
    ("day", "served"),
    [("2026-08-30", 4), ("2026-08-31", 5), ("2026-09-15", 5), ("2026-09-30", 6)],
)
def test_rupture_cancels_unpaid_tranches_and_recovers_what_was_not_earned(
    world: Any, in_post: int, day: str, served: int
) -> None:
    assert pay(world, "2026-08-03T12:00") == [(in_post, 1, TRANCHES[0])]
    view = world.fire(in_post, "break_contract", f"{day}T18:00", reason="demission", date=day)
    earned = SUBSIDY * served // 24
    assert view["recovery_cents"] == TRANCHES[0] - earned
    assert statuses(world, in_post) == ["paid", "cancelled", "cancelled"]
    (order,) = notices(world, in_post, "recovery_order")
    assert (order["recipient"], order["paid_cents"], order["earned_cents"], order["recovery_cents"]) == (
        "structure",
        TRANCHES[0],
        earned,
        TRANCHES[0] - earned,
    )
    assert pay(world, "2028-06-01T00:00") == []


def test_rupture_worked_example_to_the_cent(world: Any, in_post: int) -> None:
    pay(world, "2026-08-03T12:00")
    view = world.fire(in_post, "break_contract", "2026-09-15T10:00", reason="licenciement", date="2026-09-15")
    # 5 whole months served (April to August): 50,000 € × 5 / 24 = 10,416.66 € earned; 20,000 € paid
    assert view["recovery_cents"] == 958_334  # 9,583.34 € to recover


def test_rupture_after_earning_more_than_paid_recovers_nothing(world: Any, in_post: int) -> None:
    pay(world, "2027-04-01T10:00")
    view = world.fire(in_post, "break_contract", "2027-12-31T10:00", reason="licenciement", date="2027-12-31")
    assert view["recovery_cents"] == 0
    assert statuses(world, in_post) == ["paid", "paid", "cancelled"]
    assert notices(world, in_post, "recovery_order") == []
    ruptures = notices(world, in_post, "rupture")
    assert {r["recipient"] for r in ruptures} == {"structure", "candidate"}
    # 21 whole months served (2026-04-01 to 2027-12-31): 43,750 € earned, 35,000 € paid
    assert {(r["paid_cents"], r["earned_cents"]) for r in ruptures} == {(3_500_000, 4_375_000)}


def test_rupture_before_taking_post_cancels_every_tranche(world: Any) -> None:
    case = world.signed(start="2026-04-01", end="2028-03-31")
    view = world.fire(case, "break_contract", "2026-04-20T10:00", reason="demission", date="2026-04-20")
    assert view["recovery_cents"] == 0
    assert statuses(world, case) == ["cancelled"] * 3


def test_cancel_of_a_case_under_contract_settles_like_a_rupture(world: Any, in_post: int) -> None:
    pay(world, "2026-08-03T12:00")
    view = world.fire(in_post, "cancel", "2026-09-15T10:00", actor="prefet:33", reason="convention résiliée")
    assert view["state"] == "cancelled"
    assert view["recovery_cents"] == 958_334
    assert statuses(world, in_post) == ["paid", "cancelled", "cancelled"]
    assert pay(world, "2028-06-01T00:00") == []


def test_cancel_before_any_contract_has_no_money_effect(world: Any) -> None:
    case = world.present(world.structure(), world.candidate())
    view = world.fire(case, "cancel", "2026-03-05T10:00", reason="doublon")
    assert (view["recovery_cents"], view["tranches"], view["subsidy_cents"]) == (0, [], None)


def test_each_payment_moves_the_case_version(world: Any, in_post: int) -> None:
    before = get_case(world.engine, in_post)
    assert pay(world, "2026-08-03T10:00") == [(in_post, 1, TRANCHES[0])]  # the instant it took post
    after = get_case(world.engine, in_post)
    assert len(after["history"]) == len(before["history"]) + 1
    assert after["version"] > before["version"]


def test_payment_later_than_the_last_entry_moves_the_case_version(world: Any, in_post: int) -> None:
    before = get_case(world.engine, in_post)
    pay(world, "2026-08-03T12:00")
    assert get_case(world.engine, in_post)["version"] > before["version"]
