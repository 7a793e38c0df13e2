"""pay-tranches: a tranche is paid once and gets one payment order file, however often the run runs."""

from __future__ import annotations

import json
from typing import Any

from prefect.artifacts import Artifact
from sqlmodel import select

from flows.payments import pay_tranches
from states.clock import parse_instant
from states.db import read_session
from states.models import Tranche
from states.outbox import payment_order_name


def _in_post(world: Any, structure: int) -> int:
    case = world.signed(structure=structure, start="2026-04-01", end="2028-03-31")
    world.fire(case, "start_training", "2026-04-02T10:00", date="2026-04-01")
    world.fire(case, "complete_training", "2026-08-03T10:00", date="2026-08-03")
    return case


def test_paying_twice_pays_each_tranche_once_with_one_order_file_each(world: Any, conum_env: Any) -> None:
    public, private = world.structure(posts=2), world.structure(kind="private")
    cases = [_in_post(world, public), _in_post(world, public), _in_post(world, private)]
    at = parse_instant("2026-08-04T06:00")

    first = pay_tranches(at=at)
    second = pay_tranches(at=at)

    assert (first["paid"], first["orders_written"]) == (3, 3)
    assert first["amount_cents"] == 2 * 2_000_000 + 1_600_000  # tranche 1: 40 % of 50,000 € / 40,000 €
    assert (second["paid"], second["orders_written"]) == (0, 0)
    files = sorted(p.name for p in conum_env.payment_dir.iterdir())
    assert files == sorted(payment_order_name(case, 1) for case in cases)
    order = json.loads((conum_env.payment_dir / payment_order_name(cases[2], 1)).read_text())
    assert (order["case_id"], order["tranche_number"], order["amount_cents"]) == (cases[2], 1, 1_600_000)
    with read_session(conum_env.engine) as s:
        tranches = s.exec(select(Tranche).where(Tranche.number == 1)).all()
    assert {(t.case_id, t.status) for t in tranches} == {(case, "paid") for case in cases}


def test_the_run_shows_the_payments_by_structure_with_totals(world: Any, conum_env: Any) -> None:
    public, private = world.structure(posts=2, departement="86"), world.structure(kind="private")
    for structure in (public, public, private):
        _in_post(world, structure)

    state = pay_tranches(at=parse_instant("2026-08-04T06:00"), return_state=True)

    table = Artifact.get("pay-tranches")
    assert table is not None and table.flow_run_id == state.state_details.flow_run_id
    rows = {r["structure"]: r for r in json.loads(str(table.data))}
    assert (rows[public]["tranches"], rows[public]["département"]) == (2, "86")
    assert rows[public]["montant"] == "40\u00a0000,00\u00a0€"
    assert (rows[private]["tranches"], rows[private]["montant"]) == (1, "16\u00a0000,00\u00a0€")
    assert (rows["total"]["tranches"], rows["total"]["montant"]) == (3, "56\u00a0000,00\u00a0€")
    orders = Artifact.get("pay-tranches-orders")
    assert orders is not None and len(json.loads(str(orders.data))) == 3
