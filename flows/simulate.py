"""``simulate-programme``: a whole programme in fast-forward, as one parent flow run.

The parent run generates the programme (``states.simulation``), then runs one
child flow run, ``simulate-month``, per simulated month: the people's actions
of each day through the transition service, the daily sweep, payments and
outbox delivery, exactly as the deployments would run them. It then reads the
figures, reconciles the books and writes the HTML report
(``states.simulation``). A month is the unit a reader follows in the UI: one run
per action would be tens of thousands of runs, one run for three years would
show nothing until the end.

Each month's actions are recorded in the cases' history with the child run's
id. The simulation state lives in this process between months (the child runs
get only the month's label as parameter: the state is not data for the API).

Heartbeats: the parent keeps them, so that a run of several minutes that dies
shows as crashed; the monthly child runs go without (``without_heartbeats``):
about forty of them would each wait up to a second for their heartbeat thread,
and a child that dies takes its parent with it, which the parent's heartbeat
shows.

Artifacts: ``simulation-progress`` (months done), ``simulation-summary``
(markdown: headline figures and the reconciliation), ``simulation-figures``
(the headline figures as a table) and ``simulation-report`` (where the HTML
report is).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact
from prefect.runtime import flow_run

from flows.common import Progress, instant, markdown, policy, table, without_heartbeats
from states.errors import ConumError
from states.simulation import MonthReport, Simulation, conclude, headline, make_config, markdown_summary, prepare

#: Called after each month with its report and the number of months done.
OnMonth = Callable[[MonthReport, int], None]


_current: ContextVar[Simulation | None] = ContextVar("conum_simulation", default=None)
_listener: ContextVar[tuple[Callable[[int], None] | None, OnMonth | None]] = ContextVar(
    "conum_simulation_listener", default=(None, None)
)


@contextmanager
def listening(on_start: Callable[[int], None] | None, on_month: OnMonth | None) -> Iterator[None]:
    """Have ``on_start(months)`` and ``on_month(report, done)`` called by the run started inside (a progress bar)."""
    token = _listener.set((on_start, on_month))
    try:
        yield
    finally:
        _listener.reset(token)


@flow(name="simulate-month", flow_run_name="mois-{month}", persist_result=False)
def simulate_month(month: str) -> dict[str, Any]:
    """Run the simulated days of ``month`` (YYYY-MM) of the programme being simulated."""
    sim = _current.get()
    if sim is None:
        raise ConumError("simulate-month runs only inside simulate-programme: run `conum simulate`")
    sim.flow_run_id = flow_run.get_id()
    try:
        done = sim.run_month(month)
    finally:
        sim.flow_run_id = None
    get_run_logger().info(
        "%s: %s action(s), %s refused, %s reminder(s), %s escalation(s), %s time-out(s), %s tranche(s) paid, "
        "%s case(s) open",
        month,
        done.actions,
        done.refused,
        done.reminded,
        done.escalated,
        done.timed_out,
        done.payments,
        done.open_cases,
    )
    return asdict(done)


@flow(name="simulate-programme", persist_result=False)
def simulate_programme(
    posts: int = 4000,
    seed: int = 1,
    start: str = "2026-01-05",
    database_url: str = "sqlite:///run/sim/simulation.db",
    report: str = "run/sim/report.html",
    at: datetime | None = None,
) -> dict[str, Any]:
    """Simulate a programme of ``posts`` posts from ``start`` on a new or empty database; write the report.

    Args:
        posts: Posts attributed in the whole programme.
        seed: The same seed gives the same programme and the same figures, to the cent.
        start: The programme's first day (YYYY-MM-DD).
        database_url: A new or empty database (it is created and migrated).
        report: Where the HTML report goes; e-mails and payment orders go into ``mail/`` and
            ``payments/`` next to it.
        at: The instant the report is dated (default now); the simulated clock starts at ``start``.
    """
    logger = get_run_logger()
    pol = policy()
    config = make_config(posts, seed, start, pol)
    sim = prepare(database_url, pol, config, report)
    token = _current.set(sim)
    try:
        months = sim.months()
        on_start, on_month = _listener.get()
        if on_start:
            on_start(len(months))
        progress = Progress("simulation-progress", len(months), f"Months simulated from {config.start}")
        with without_heartbeats():
            for done, month in enumerate(months, start=1):
                if sim.finished:
                    break
                month_report = MonthReport(**simulate_month(month))
                progress(done)
                if on_month:
                    on_month(month_report, done)
        progress.finish()
        result = conclude(sim, report, generated_at=instant(at))
    finally:
        _current.reset(token)
        sim.close()
    heads = headline(result.figures)
    table(
        "simulation-figures",
        [{"indicateur": h.label, "valeur": h.value, "cle": h.key} for h in heads],
        f"Headline figures of the simulated programme (seed {config.seed})",
    )
    markdown(
        "simulation-summary",
        markdown_summary(result.figures, result.reconciliation, str(result.report)),
        "Simulated programme",
    )
    create_link_artifact(result.report.as_uri(), link_text="Rapport du programme simulé", key="simulation-report")
    if result.ok:
        logger.info("reconciliation OK; report at %s", result.report)
    else:
        logger.error(
            "reconciliation found %s violation(s); report at %s", len(result.reconciliation.violations), result.report
        )
    return {**result.to_dict(), "flow_run_id": flow_run.get_id()}
