"""``programme-dashboard``: the ANCT's view of the programme, as Prefect artifacts.

Hourly and on demand. The figures come from ``states.dashboard`` (no Prefect
there); this flow only publishes them. Artifact keys:

- ``dashboard-summary``: the key figures (markdown);
- ``dashboard-departements``, ``dashboard-regions``: open cases by département / région and state,
  with the overdue and escalated ones;
- ``dashboard-departements-clos``, ``dashboard-regions-clos``: closed cases by département / région and
  how they ended (the tables are split so that each reads at 1,400 px);
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
    table(
        "dashboard-departements",
        d.by_departement,
        f"Dossiers en cours par département au {stamp}. {dashboard.LEGEND_OPEN}",
    )
    table("dashboard-regions", d.by_region, f"Dossiers en cours par région au {stamp}. {dashboard.LEGEND_OPEN}")
    table(
        "dashboard-departements-clos",
        d.closed_by_departement,
        f"Dossiers clos par département au {stamp}. {dashboard.LEGEND_CLOSED}",
    )
    table(
        "dashboard-regions-clos", d.closed_by_region, f"Dossiers clos par région au {stamp}. {dashboard.LEGEND_CLOSED}"
    )
    table(
        "dashboard-attention",
        d.attention,
        f"{d.attention_total} dossier(s) en retard ou escaladé(s) au {stamp}, les plus escaladés d'abord. "
        "**retard (j)** : jours depuis l'échéance ; **escalade** : relance, préfet ou ANCT.",
    )
    table("dashboard-money", dashboard.money_table(d.money), f"Subvention par mois au {stamp}")
    markdown("dashboard-lifecycle", dashboard.lifecycle_markdown(), "Cycle de vie d'un dossier")
    posts = d.posts
    table(
        "dashboard-posts-national",
        posts.national,
        f"Postes demandés, validés et sous contrat face à l'enveloppe au {stamp}",
    )
    table("dashboard-posts-regions", posts.by_region, f"Postes par région face aux enveloppes au {stamp}")
    table("dashboard-posts-departements", posts.by_departement, f"Postes par département au {stamp}")
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
