"""A whole simulation without Prefect: prepare the database and the programme, run the days, conclude.

``prepare`` checks, creates the schema and generates the programme;
``conclude`` reads the figures, reconciles the books and writes the report
into an ``Outcome``. The same seed gives the same programme and the same
figures to the cent; only the paths differ between runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from states.db import get_engine, migrate
from states.policy import Policy
from states.simulation.config import Config
from states.simulation.dayloop import Delivery, MonthReport, Simulation
from states.simulation.figures import Figures, collect, headline
from states.simulation.preflight import check_empty, preflight, sqlite_folder
from states.simulation.reconciliation import Reconciliation, reconcile
from states.simulation.report import render


def prepare(
    database_url: str,
    policy: Policy,
    config: Config,
    report_path: Path | str,
    *,
    deliver: Delivery = "background",
) -> Simulation:
    """Check the database and the output folder are free, create the schema, generate the programme.

    Nothing is written when a check refuses: a database holding a programme, or mail left by an
    earlier run, raises ``BadInput`` first.
    """
    preflight(database_url, report_path)
    out = Path(report_path).resolve()
    folder = sqlite_folder(database_url)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    engine = get_engine(database_url)
    migrate(database_url)
    check_empty(engine, make_url(database_url).render_as_string(hide_password=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    sim = Simulation(engine, policy, config, out_dir=out.parent, deliver=deliver)
    try:
        sim.setup()
    except BaseException:
        sim.close()
        raise
    return sim


@dataclass
class Outcome:
    """A finished simulation: its figures, the reconciliation and where the report is."""

    figures: Figures
    reconciliation: Reconciliation
    report: Path
    database_url: str

    @property
    def ok(self) -> bool:
        return bool(self.reconciliation.ok)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the same for the same seed, except the paths."""
        f = self.figures
        return {
            "ok": self.ok,
            "report": str(self.report),
            "database": make_url(self.database_url).render_as_string(hide_password=True),
            "headline": [{"key": h.key, "label": h.label, "value": h.value} for h in headline(f)],
            "totals": {
                "posts": f.posts,
                "structures": f.structures,
                "candidates": f.candidates,
                "cases": f.cases,
                "by_state": f.by_state,
                "committed_cents": f.committed_cents,
                "paid_cents": f.paid_cents,
                "cancelled_cents": f.cancelled_cents,
                "scheduled_cents": f.scheduled_cents,
                "recovery_cents": f.recovery_cents,
                "recoveries": f.recoveries,
                "mails": f.mails,
                "payment_orders": f.payment_orders,
            },
            "run": f.run,
            "reconciliation": self.reconciliation.to_dict(),
        }


def parameters(config: Config) -> list[tuple[str, str]]:
    """The parameters of a run, as the report lists them."""
    return [("postes", str(config.posts)), ("graine", str(config.seed)), ("début", config.start.isoformat())]


def conclude(sim: Simulation, report_path: Path | str, *, generated_at: datetime | None = None) -> Outcome:
    """Read the figures, reconcile the books and write the report of a finished simulation."""
    stats = sim.finish()
    figures = collect(
        sim.engine,
        stats.to_dict(),
        mail_dir=sim.mail_dir,
        payment_dir=sim.payment_dir,
        envelope=sim.policy.national_posts,
    )
    rec = reconcile(sim.engine, sim.policy)
    page = render(figures, rec, report_path, generated_at=generated_at, parameters=parameters(sim.config))
    return Outcome(figures, rec, page, str(sim.engine.url))


def simulate(
    database_url: str,
    policy: Policy,
    config: Config,
    report_path: Path | str,
    *,
    on_month: Callable[[MonthReport], None] | None = None,
    generated_at: datetime | None = None,
    deliver: Delivery = "background",
) -> Outcome:
    """The whole simulation without Prefect: prepare, run every month, conclude."""
    sim = prepare(database_url, policy, config, report_path, deliver=deliver)
    try:
        sim.run(on_month)
        return conclude(sim, report_path, generated_at=generated_at)
    finally:
        sim.close()
