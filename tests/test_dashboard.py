"""The programme dashboard's figures, computed from the rows (no Prefect here)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlmodel import select

from states import batch, dashboard
from states.clock import parse_instant, utc
from states.db import read_session
from states.geo import region_of
from states.lifecycle import EVENTS, LABELS, OPEN, State, destination
from states.machine import mermaid
from states.models import Case, Structure


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
    deps = {r["dép."]: r for r in dashboard.departement_table(counts)}
    steps = {r["dép."]: r for r in dashboard.departement_steps_table(counts)}
    closed = {r["dép."]: r for r in dashboard.departement_closed_table(counts)}
    regions = {r["région"]: r for r in dashboard.region_table(counts)}
    region_steps = {r["région"]: r for r in dashboard.region_steps_table(counts)}

    assert (steps["86"]["présenté"], deps["86"]["en cours"]) == (1, 1)
    assert (closed["86"]["décliné"], closed["86"]["clos"], deps["86"]["clos"], deps["86"]["total"]) == (1, 1, 1, 2)
    assert deps["86"]["nom"] == "Vienne"
    assert steps["33"]["signé"] == 1
    assert set(deps) == set(steps) == set(closed) == {"33", "86", "974", "total"}
    assert deps["total"]["total"] == 4
    assert regions["Nouvelle-Aquitaine"]["total"] == 3  # Vienne and Gironde together
    assert region_steps["Nouvelle-Aquitaine"]["signé"] == 1
    assert region_steps["La Réunion"]["présenté"] == 1
    assert regions["total"]["en cours"] == 3


def test_an_empty_programme_has_empty_tables(world: Any) -> None:
    d = dashboard.build(world.engine, parse_instant("2026-03-01"))
    assert (d.by_departement, d.by_region, d.attention, d.money, d.attention_total) == ([], [], [], [], 0)
    assert (d.closed_by_departement, d.closed_by_region, d.steps_by_departement, d.steps_by_region) == ([],) * 4
    assert (d.overdue, d.escalated) == (0, 0)
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
    assert rows[0]["escalade"] == "préfet" and rows[0]["étape"] == "retenu"
    assert rows[1]["retard (j)"] == 2  # deadline 16 March, read on 18 March
    assert rows[1]["échéance"] == "16/03/2026 11:00"  # Paris time, to the minute
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
    assert [r["mois"] for r in dashboard.money_table(list(ledger.values()))][:2] == ["avril 2026", "mai 2026"]
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


def test_the_lifecycle_is_drawn_from_the_table_with_french_labels_only() -> None:
    drawn = dashboard.lifecycle_markdown().split("```mermaid\n")[1]
    moves = [line for line in mermaid().splitlines() if "-->" in line]
    assert len([line for line in drawn.splitlines() if "-->" in line]) == len(moves)
    for state in State:
        assert f'state "{LABELS[state]}" as' in drawn
        assert state.value not in drawn
    for event in EVENTS:
        moves_state = any(destination(event, src) != src for src in event.sources)
        assert (f": {event.label}" in drawn) == moves_state and f": {event.name}" not in drawn


def test_overdue_and_escalated_counts_per_departement_and_region_match_the_rows(world: Any) -> None:
    places = ["86", "86", "33", "974", "75", "2A"]
    for i, dep in enumerate(places):
        structure = world.structure(departement=dep, posts=3)
        case = world.present(structure, world.candidate(), at=f"2026-03-0{1 + i % 3}T10:00")
        if i % 2:
            world.fire(case, "select", "2026-03-04T10:00")
    world.present(world.structure(departement="33"), world.candidate(), at="2026-03-20T10:00")  # not due yet
    batch.sweep(world.engine, parse_instant("2026-03-19T12:00"), world.policy)  # reminders, escalations, time-outs
    at = parse_instant("2026-03-21T12:00")

    d = dashboard.build(world.engine, at)

    expected: dict[str, Counter[str]] = {}
    with read_session(world.engine) as s:
        for case, structure in s.exec(select(Case, Structure).where(Case.structure_id == Structure.id)).all():
            if State(case.state) not in OPEN:
                continue
            c = expected.setdefault(structure.departement, Counter())
            c["en cours"] += 1
            c["en retard"] += case.deadline_at is not None and utc(case.deadline_at) < at
            c["escaladés"] += case.escalation_level >= 2
    keys = ("en cours", "en retard", "escaladés")
    got = {r["dép."]: Counter({k: r[k] for k in keys}) for r in d.by_departement if r["dép."] != "total"}
    assert {k: +v for k, v in got.items() if +v} == {k: +v for k, v in expected.items()}
    by_region: dict[str, Counter[str]] = {}
    for dep, c in expected.items():
        by_region.setdefault(region_of(dep), Counter()).update(c)
    got_regions = {r["région"]: Counter({k: r[k] for k in keys}) for r in d.by_region if r["région"] != "total"}
    assert {k: +v for k, v in got_regions.items() if +v} == {k: +v for k, v in by_region.items()}
    assert sum(c["escaladés"] for c in expected.values()) == d.escalated > 0
    assert sum(c["en retard"] for c in expected.values()) == d.overdue > 0
    assert "En retard ou escaladés" in d.summary_markdown() and f"en retard : **{d.overdue}**" in d.summary_markdown()


def test_long_structure_names_are_cut_in_tables() -> None:
    assert dashboard.clip("Mairie", 32) == "Mairie"
    cut = dashboard.clip("Communauté d'agglomération du Grand Territoire de l'Ouest", 32)
    assert len(cut) <= 32 and cut.endswith("…") and cut.startswith("Communauté d'agglomération")
