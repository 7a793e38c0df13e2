"""The programme dashboard's figures, computed from the rows (no Prefect here)."""

from __future__ import annotations

from typing import Any

from states import batch, dashboard
from states.clock import parse_instant
from states.db import read_session
from states.machine import mermaid


def _in_post(world: Any, structure: int, start: str = "2026-04-01", end: str = "2028-03-31") -> int:
    case = world.signed(structure=structure, start=start, end=end)
    world.fire(case, "start_training", "2026-04-02T10:00", date=start)
    world.fire(case, "complete_training", "2026-08-03T10:00", date="2026-08-03")
    return case


def test_cases_are_counted_by_departement_and_state_then_grouped_by_region(world: Any) -> None:
    poitiers, bordeaux, reunion = (
        world.structure(departement="86"),
        world.structure(departement="33"),
        world.structure(departement="974"),
    )
    world.present(poitiers, world.candidate())
    declined = world.present(poitiers, world.candidate())
    world.fire(declined, "decline", "2026-03-02T10:00", reason="profil éloigné")
    world.signed(structure=bordeaux)
    world.present(reunion, world.candidate())

    with read_session(world.engine) as s:
        counts = dashboard.counts_by_departement(s)
    deps = {r["département"]: r for r in dashboard.departement_table(counts)}
    regions = {r["région"]: r for r in dashboard.region_table(counts)}

    assert (deps["86"]["candidate_presented"], deps["86"]["declined"], deps["86"]["en cours"], deps["86"]["total"]) == (
        1,
        1,
        1,
        2,
    )
    assert (deps["86"]["nom"], deps["86"]["région"]) == ("Vienne", "Nouvelle-Aquitaine")
    assert deps["33"]["contract_signed"] == 1
    assert set(deps) == {"33", "86", "974", "total"}
    assert deps["total"]["total"] == 4
    assert regions["Nouvelle-Aquitaine"]["total"] == 3  # Vienne and Gironde together
    assert regions["Nouvelle-Aquitaine"]["contract_signed"] == 1
    assert regions["La Réunion"]["candidate_presented"] == 1
    assert regions["total"]["en cours"] == 3


def test_an_empty_programme_has_empty_tables(world: Any) -> None:
    d = dashboard.build(world.engine, parse_instant("2026-03-01"))
    assert (d.by_departement, d.by_region, d.attention, d.money, d.attention_total) == ([], [], [], [], 0)
    assert "Dossiers : **0**" in d.summary_markdown()


def test_overdue_and_escalated_open_cases_need_attention_most_escalated_first(world: Any) -> None:
    late = world.present(world.structure(departement="86"), world.candidate(), at="2026-03-01T10:00")
    escalated = world.present(world.structure(departement="33"), world.candidate(), at="2026-03-01T10:00")
    world.fire(escalated, "select", "2026-03-02T10:00")
    closed = world.present(world.structure(), world.candidate(), at="2026-03-01T10:00")
    world.fire(closed, "cancel", "2026-03-02T10:00", reason="poste réattribué")
    world.present(world.structure(), world.candidate(), at="2026-03-15T10:00")  # deadline still ahead
    at = parse_instant("2026-03-18T12:00")
    batch.sweep(
        world.engine, parse_instant("2026-03-17T12:00"), world.policy
    )  # "late" times out, "escalated" goes to the préfet
    late_again = world.present(world.structure(departement="86"), world.candidate(), at="2026-03-01T11:00")

    with read_session(world.engine) as s:
        total, rows = dashboard.attention(s, at)
        _, first = dashboard.attention(s, at, limit=1)

    assert total == 2
    assert [r["dossier"] for r in rows] == [escalated, late_again]
    assert rows[0]["niveau d'escalade"] == 2 and rows[0]["état"] == "Candidat retenu"
    assert rows[1]["jours de retard"] == 2  # deadline 16 March, read on 18 March
    assert [r["dossier"] for r in first] == [escalated]
    assert late not in {r["dossier"] for r in rows}


def test_the_money_ledger_balances_and_dates_each_movement(world: Any) -> None:
    _in_post(world, world.structure(departement="86"))  # steady
    broken = _in_post(world, world.structure(departement="33"))
    world.signed(  # waiting for its conseiller to take post
        structure=world.structure(departement="75"), start="2026-05-01", end="2028-04-30"
    )
    batch.pay(world.engine, parse_instant("2026-08-04T06:00"), world.policy)  # tranche 1 of both in post
    world.fire(broken, "break_contract", "2026-09-10T10:00", reason="demission", date="2026-09-10")

    with read_session(world.engine) as s:
        ledger = {m.month: m for m in dashboard.money_by_month(s)}

    assert ledger["2026-04"].committed == 2 * 5_000_000
    assert ledger["2026-05"].committed == 5_000_000
    assert ledger["2026-08"].paid == 2 * 2_000_000
    assert ledger["2026-09"].cancelled == 1_500_000 + 1_500_000  # tranches 2 and 3 of the broken contract
    assert ledger[dashboard.NOT_YET_DUE].to_pay == 2_000_000  # tranche 1 of "waiting", due when it takes post
    assert ledger["2027-04"].to_pay == 1_500_000  # tranche 2 of "steady"
    total = dashboard.money_table(list(ledger.values()))[-1]
    assert total["mois"] == "total"
    months = list(ledger.values())
    committed = sum(m.committed for m in months)
    assert committed == sum(m.paid + m.to_pay + m.cancelled for m in months)
    assert total["engagé"] == "150\u00a0000,00\u00a0€"


def test_the_sweep_progress_counts_the_cases_due(world: Any) -> None:
    for _ in range(3):
        world.present(world.structure(), world.candidate(), at="2026-03-01T10:00")
    at = parse_instant("2026-03-11T10:00")

    with read_session(world.engine) as s:
        before = dashboard.due_count(s, at)
    report = batch.sweep(world.engine, at, world.policy)
    with read_session(world.engine) as s:
        after = dashboard.due_count(s, at)

    assert (before, report.reminded, after) == (3, 3, 0)


def test_payments_are_grouped_by_structure_with_a_total(world: Any) -> None:
    a, b = world.structure(departement="86"), world.structure(departement="974")
    with read_session(world.engine) as s:
        rows = dashboard.payments_by_structure(s, [(a, 2_000_000), (b, 2_800_000), (a, 1_500_000)])
        empty = dashboard.payments_by_structure(s, [])
    assert [(r["structure"], r["tranches"], r["montant"]) for r in rows] == [
        (a, 2, "35\u00a0000,00\u00a0€"),
        (b, 1, "28\u00a0000,00\u00a0€"),
        ("total", 3, "63\u00a0000,00\u00a0€"),
    ]
    assert rows[1]["département"] == "974"
    assert empty == []


def test_the_lifecycle_is_drawn_from_the_table() -> None:
    text = dashboard.lifecycle_markdown()
    assert f"```mermaid\n{mermaid()}\n```" in text
