"""The day loop: every case of a programme ends, the side paths happen, and a dead delivery process stops it.

The run reads the small programme of ``conftest.py``; the delivery test runs
its own, stopping the delivery process after the first month.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from simulated import POLICY, SMALL

from states.outbox.process import DeliveryFailed
from states.simulation import Outcome, make_config, prepare


def test_every_case_ends_and_the_side_paths_happen(first: Outcome) -> None:
    f, run_ = first.figures, first.figures.run
    assert run_["open_at_end"] == 0
    assert sum(f.by_state[s] for s in ("candidate_presented", "selected", "in_post")) == 0
    assert f.by_state["tranches_paid"] > 0 and f.reached["in_post"] > 0
    totals = f.deadline_totals
    assert totals["reminders"] > 0 and totals["prefet"] > 0 and totals["time_outs"] > 0
    assert f.ruptures, "no contract broke"
    assert sum(run_["refused"].values()) > 0, "no action was refused"
    assert f.mails > 0 and f.payment_orders == sum(1 for _ in (first.report.parent / "payments").iterdir())


def test_a_delivery_process_that_dies_stops_the_run_clearly_and_loses_no_mail(tmp_path: Path) -> None:
    config = make_config(SMALL, 7, "2026-01-05", POLICY)
    sim = prepare(f"sqlite:///{tmp_path / 'sim.db'}", POLICY, config, tmp_path / "report.html")
    try:
        months = sim.months()
        sim.run_month(months[0])
        assert sim.courier is not None
        sim.courier.proc.kill()
        sim.courier.proc.wait()
        with pytest.raises(DeliveryFailed, match="the delivery process stopped"):
            sim.run_month(months[1])
    finally:
        sim.close()
    with sqlite3.connect(str(tmp_path / "sim.db")) as db:
        status = dict(db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
        mail = db.execute("SELECT id FROM outbox WHERE status = 'sent' AND kind != 'payment_order'")
        sent_mail = [i for (i,) in mail]
    # what was not delivered waits in the outbox: pending, or claimed until its lease ends; nothing failed
    assert status.get("pending", 0) + status.get("sending", 0) > 0
    assert "failed" not in status
    assert sent_mail  # the first month's mail went out, and every mail recorded as sent is written
    written = {int(p.name.split("-")[1]) for p in (tmp_path / "mail").glob("*.eml")}
    assert set(sent_mail) <= written
