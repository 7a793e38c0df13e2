"""``programme-dashboard``: the ANCT's view of the programme, as Prefect artifacts.

Hourly and on demand. The figures come from ``states.dashboard`` (no Prefect
there); this flow only publishes them. Artifact keys:

- ``dashboard-summary``: the key figures (markdown);
- ``dashboard-departements``, ``dashboard-regions``: by département / région, the open cases, the
  overdue and the escalated ones, the closed ones and all;
- ``dashboard-departements-etapes``, ``dashboard-regions-etapes``: open cases by step;
- ``dashboard-departements-clos``, ``dashboard-regions-clos``: closed cases by how they ended.

The tables are split and their headers short (a legend in each description) so that each fits the
artifact page of the Prefect UI in a 1,400 px wide window without scrolling sideways.
- ``dashboard-attention``: open cases overdue or escalated;
- ``dashboard-money``: subsidy committed, paid, still to pay and cancelled, by month;
- ``dashboard-lifecycle``: the lifecycle diagram (mermaid), generated from the table;
- ``dashboard-posts-national``, ``dashboard-posts-regions``, ``dashboard-posts-departements``: posts
  requested, validated and under contract, against the national envelope and the regional ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger

from flows.common import engine, instant, markdown, table
from states import dashboard
from states.labels import when_long

KEYS = (
    "dashboard-summary",
    "dashboard-departements",
    "dashboard-regions",
    "dashboard-departements-etapes",
    "dashboard-regions-etapes",
    "dashboard-departements-clos",
    "dashboard-regions-clos",
    "dashboard-attention",
    "dashboard-money",
    "dashboard-lifecycle",
    "dashboard-posts-national",
    "dashboard-posts-regions",
    "dashboard-posts-departements",
)


@flow(name="programme-dashboard", retries=0, persist_result=False)
def programme_dashboard(at: datetime | None = None) -> dict[str, Any]:
    """Publish the programme dashboard; return its key figures.

    Args:
        at: The instant the dashboard describes (default now).
    """
    when = instant(at)
    d = dashboard.build(engine(), when)
    stamp = when_long(when)
    markdown("dashboard-summary", d.summary_markdown(), f"Tableau de bord au {stamp}")
    key_figures, steps, closed = dashboard.LEGEND_FIGURES, dashboard.LEGEND_STEPS, dashboard.LEGEND_CLOSED
    table("dashboard-departements", d.by_departement, f"Dossiers par département au {stamp}. {key_figures}")
    table("dashboard-regions", d.by_region, f"Dossiers par région au {stamp}. {key_figures}")
    table(
        "dashboard-departements-etapes",
        d.steps_by_departement,
        f"Dossiers en cours par département et par étape au {stamp}. {steps}",
    )
    table(
        "dashboard-regions-etapes", d.steps_by_region, f"Dossiers en cours par région et par étape au {stamp}. {steps}"
    )
    table("dashboard-departements-clos", d.closed_by_departement, f"Dossiers clos par département au {stamp}. {closed}")
    table("dashboard-regions-clos", d.closed_by_region, f"Dossiers clos par région au {stamp}. {closed}")
    table(
        "dashboard-attention",
        d.attention,
        f"{d.attention_total} dossier(s) en retard ou escaladé(s) au {stamp}, les plus escaladés d'abord. "
        "**retard (j)** : jours depuis l'échéance ; **escalade** : relance, préfet ou ANCT.",
    )
    table("dashboard-money", dashboard.money_table(d.money), f"Subvention par mois au {stamp}")
    markdown("dashboard-lifecycle", dashboard.lifecycle_markdown(), "Cycle de vie d'un dossier")
    posts = d.posts
    legend = dashboard.LEGEND_POSTS
    table(
        "dashboard-posts-national",
        dashboard.narrow_posts(posts.national),
        f"Postes demandés, validés et sous contrat face à l'enveloppe au {stamp}. {legend}",
    )
    table(
        "dashboard-posts-regions",
        dashboard.narrow_posts(posts.by_region),
        f"Postes par région face aux enveloppes au {stamp}. {legend}",
    )
    table(
        "dashboard-posts-departements",
        dashboard.narrow_posts(posts.by_departement),
        f"Postes par département au {stamp}. {legend}",
    )
    figures = {
        "cases": sum(d.counts.values()),
        "attention": d.attention_total,
        "overdue": d.overdue,
        "escalated": d.escalated,
        "broken_histories": d.broken_histories,
        "committed_cents": sum(m.committed for m in d.money),
        "paid_cents": sum(m.paid for m in d.money),
        "to_pay_cents": sum(m.to_pay for m in d.money),
    }
    get_run_logger().info("tableau de bord au %s : %s", stamp, figures)
    return figures
