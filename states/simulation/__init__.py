"""A whole programme in fast-forward: generated structures and people acting day by day, then its report.

``generation`` builds a programme shaped like the real one from a seed;
``behaviour`` plays its people and ``dayloop`` runs them day by day through
the real transition service, sweep, payments and outbox delivery; ``figures``,
``reconciliation`` and ``report`` read the result, check the books and write
the page the ANCT reads. The same seed gives the same programme and the same
figures to the cent. Nothing here imports Prefect: ``flows/simulate.py`` runs
it month by month.
"""

from states.simulation.charts import CHARTS
from states.simulation.config import DEFAULT_START, EMPLOYERS, MAX_POSTS, Config, Employer, make_config
from states.simulation.dayloop import MonthReport, RunStats, Simulation
from states.simulation.figures import Figures, collect, headline
from states.simulation.generation import Programme, generate
from states.simulation.preflight import default_database, preflight
from states.simulation.rates import Rates
from states.simulation.reconciliation import Reconciliation, reconcile
from states.simulation.report import markdown_summary, render
from states.simulation.run import Outcome, conclude, prepare, simulate

__all__ = [
    "CHARTS",
    "DEFAULT_START",
    "EMPLOYERS",
    "MAX_POSTS",
    "Config",
    "Employer",
    "Figures",
    "MonthReport",
    "Outcome",
    "Programme",
    "Rates",
    "Reconciliation",
    "RunStats",
    "Simulation",
    "collect",
    "conclude",
    "default_database",
    "generate",
    "headline",
    "make_config",
    "markdown_summary",
    "preflight",
    "prepare",
    "reconcile",
    "render",
    "simulate",
]
