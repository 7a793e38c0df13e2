"""Payment orders: one file per tranche, written once, with the documented fields."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from outboxes import AT, ROOT, make_settings, walk_every_notification
from sqlmodel import select

from states import batch
from states.clock import parse_instant, utc
from states.db import read_session
from states.models import Case, Structure, Tranche
from states.outbox import deliver, payment_reference


def documented_fields() -> set[str]:
    doc = (ROOT / "docs" / "payment-orders.md").read_text()
    return set(re.findall(r"^\| `([a-z_.]+)` \|", doc, flags=re.M))


def flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        out[prefix + key] = value
        if isinstance(value, dict):
            out.update(flatten(value, prefix + key + "."))
    return out


def test_payment_orders_are_written_once_with_the_documented_fields(world: Any, tmp_path: Path) -> None:
    walk_every_notification(world)
    settings = make_settings(tmp_path)
    deliver(world.engine, AT, settings, kinds=["payment_order"])
    files = list((tmp_path / "payments").iterdir())
    with read_session(world.engine) as s:
        paid = s.exec(select(Tranche).where(Tranche.status == "paid")).all()
        assert len(paid) == 1
        tranche = paid[0]
        case = s.get(Case, tranche.case_id)
        assert case is not None and tranche.due_on is not None and tranche.paid_at is not None
        structure = s.get(Structure, case.structure_id)
        assert structure is not None
    assert [f.name for f in files] == [f"payment-order-case{tranche.case_id}-tranche{tranche.number}.json"]
    order = json.loads(files[0].read_text(encoding="utf-8"))
    assert set(flatten(order)) == documented_fields()
    assert order["amount_cents"] == tranche.amount_cents and order["tranche_number"] == tranche.number
    assert order["case_id"] == case.id and order["subsidy_cents"] == case.subsidy_cents
    assert order["due_on"] == tranche.due_on.isoformat()
    assert datetime.fromisoformat(order["paid_at"]) == utc(tranche.paid_at)
    assert order["structure"] == {
        "id": structure.id,
        "name": structure.name,
        "kind": structure.kind,
        "departement": structure.departement,
    }
    assert order["reference"] == payment_reference(tranche.case_id, tranche.number)
    assert order["final"] is False


def test_a_second_tranche_gets_its_own_file(world: Any, tmp_path: Path) -> None:
    case = world.signed()
    world.fire(case, "start_training", "2026-04-02T09:00", date="2026-04-02")
    world.fire(case, "complete_training", "2026-08-03T09:00", date="2026-08-03")
    batch.pay(world.engine, parse_instant("2026-08-04T06:00"), world.policy)
    batch.pay(world.engine, parse_instant("2027-04-02T06:00"), world.policy)
    deliver(world.engine, parse_instant("2027-04-03"), make_settings(tmp_path), kinds=["payment_order"])
    names = sorted(p.name for p in (tmp_path / "payments").iterdir())
    assert names == [f"payment-order-case{case}-tranche1.json", f"payment-order-case{case}-tranche2.json"]
