"""The report's charts: matplotlib figures rendered as inline SVG, the same figures giving the same SVG.

Text stays text and element ids are salted with a constant, so the page
reads offline, is searchable, and does not change between identical runs.
Colours are colour-blind safe (after Okabe & Ito).
"""

from __future__ import annotations

import io
import re
from typing import Any

from markupsafe import escape

from states.lifecycle import LABELS
from states.outbox.render import euros
from states.simulation.figures import (
    DEADLINE_KINDS,
    DEADLINE_LABELS,
    FUNNEL,
    OUTCOMES,
    Figures,
    french_number,
    month_label,
)

# Palette (colour-blind safe, after Okabe & Ito)
BLUE, ORANGE, GREEN, RED, PURPLE, GREY, SKY = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#7f7f7f",
    "#56B4E9",
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.fonttype": "none",  # text stays text: smaller, searchable
            "svg.hashsalt": "conum",  # stable element ids: the same figures give the same page
            "font.family": "DejaVu Sans",
            "font.size": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titleweight": "bold",
        }
    )
    return plt


def _svg(fig: Any, title: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    # readable for screen readers; sized by the page, not by points
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 role="img"', text, count=1)
    return text.replace(">", f"><title>{escape(title)}</title>", 1)


def _euros_axis(ax: Any, axis: str = "y") -> None:
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _pos: f"{v / 100 / 1e6:.1f} M€".replace(".", ","))
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def chart_funnel(f: Figures) -> str:
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1.25, 1]})
    steps = [LABELS[s] for s in FUNNEL]
    values = [f.reached[s.value] for s in FUNNEL]
    bars = left.barh(steps[::-1], values[::-1], color=BLUE)
    left.bar_label(bars, labels=[french_number(v) for v in values[::-1]], padding=3, fontsize=9)
    left.set_title("Dossiers ayant atteint chaque étape")
    left.margins(x=0.15)
    outcomes = [o for o in OUTCOMES if f.by_state.get(o.value)]
    open_cases = f.cases - sum(f.by_state.get(o.value, 0) for o in OUTCOMES)
    labels = [LABELS[o] for o in outcomes] + (["Encore en cours"] if open_cases else [])
    counts = [f.by_state[o.value] for o in outcomes] + ([open_cases] if open_cases else [])
    colours = [GREEN, RED, ORANGE, PURPLE, SKY, GREY, "#bbbbbb"][: len(counts)]
    bars = right.barh(labels[::-1], counts[::-1], color=colours[::-1])
    right.bar_label(bars, labels=[french_number(v) for v in counts[::-1]], padding=3, fontsize=9)
    right.set_title("Issue des dossiers")
    right.margins(x=0.18)
    fig.tight_layout()
    return _svg(fig, "Entonnoir des dossiers par état")


def chart_sign_delays(f: Figures) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.4))
    if f.sign_days:
        top = max(f.sign_days)
        ax.hist(f.sign_days, bins=range(0, int(top) + 2), color=BLUE, edgecolor="white", linewidth=0.4)
        median = f.median_sign_days or 0
        label = f"médiane : {median:.1f} jours".replace(".", ",")
        ax.axvline(median, color=ORANGE, linestyle="--", linewidth=1.5, label=label)
        ax.axvline(15, color=GREY, linestyle=":", linewidth=1.2, label="15 jours")
        ax.legend(loc="upper right", frameon=False, fontsize=9)
    ax.set_xlabel("Jours entre la présentation du candidat et la signature du contrat")
    ax.set_ylabel("Contrats")
    ax.set_title("Délai de la présentation à la signature")
    fig.tight_layout()
    return _svg(fig, "Distribution du délai entre présentation et signature")


def chart_deadlines(f: Figures) -> str:
    plt = _pyplot()
    rows = sorted(f.deadlines_by_region, key=lambda r: sum(r[k] for k in DEADLINE_KINDS))
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.32 * len(rows) + 1.2)))
    names = [r["region"] for r in rows]
    left = [0] * len(rows)
    for kind, colour in zip(DEADLINE_KINDS, (SKY, ORANGE, RED, GREY), strict=True):
        values = [r[kind] for r in rows]
        ax.barh(names, values, left=left, color=colour, label=DEADLINE_LABELS[kind])
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_title("Relances, escalades et dossiers expirés, par région")
    ax.set_xlabel("Nombre d'actes du balayage quotidien")
    ax.legend(loc="lower right", frameon=False, fontsize=9)
    fig.tight_layout()
    return _svg(fig, "Relances, escalades et dossiers expirés par région")


def chart_ruptures(f: Figures) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 2.8))
    rows = sorted(f.ruptures, key=lambda r: r["count"])
    bars = ax.barh([r["label"] for r in rows], [r["count"] for r in rows], color=RED)
    ax.bar_label(
        bars,
        labels=[
            f"{french_number(r['count'])} — {french_number(r['recoveries'])} reversement(s), "
            f"{euros(r['recovery_cents'])}"
            for r in rows
        ],
        padding=3,
        fontsize=9,
    )
    ax.margins(x=0.6)
    ax.set_title("Ruptures de contrat par motif")
    fig.tight_layout()
    return _svg(fig, "Ruptures par motif")


def chart_cashflow(f: Figures) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.8))
    months = [r["month"] for r in f.cashflow]
    x = list(range(len(months)))
    ax.bar(x, [r["paid_cents"] for r in f.cashflow], color=GREEN, label="Versé dans le mois")
    ax.plot(
        x, [r["outstanding_cents"] for r in f.cashflow], color=BLUE, linewidth=2, label="Reste à verser (fin de mois)"
    )
    cumulative, total = [], 0
    for r in f.cashflow:
        total += r["paid_cents"]
        cumulative.append(total)
    ax.plot(x, cumulative, color=ORANGE, linewidth=1.5, linestyle="--", label="Versé depuis le début")
    step = max(1, len(months) // 12)
    ax.set_xticks(x[::step], [month_label(m).replace(" 20", " ") for m in months[::step]], rotation=30, ha="right")
    _euros_axis(ax)
    ax.set_title("Subvention : versements mensuels et reste à verser")
    ax.legend(loc="upper left", frameon=False, fontsize=9)
    fig.tight_layout()
    return _svg(fig, "Flux mensuel de la subvention")


def chart_envelope(f: Figures) -> str:
    """The national envelope consumed month by month by the committee's validations (empty without applications)."""
    rows = f.applications.get("by_month") or []
    if not rows:
        return ""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.6))
    x = list(range(len(rows)))
    ax.bar(x, [r["validated"] for r in rows], color=SKY, label="Postes validés dans le mois")
    ax.plot(x, [r["validated_total"] for r in rows], color=BLUE, linewidth=2, label="Postes validés depuis le début")
    ax.axhline(f.applications["envelope"], color=RED, linestyle="--", linewidth=1.2, label="Enveloppe nationale")
    step = max(1, len(rows) // 12)
    ax.set_xticks(x[::step], [r["label"].replace(" 20", " ") for r in rows[::step]], rotation=30, ha="right")
    ax.set_ylabel("Postes")
    ax.set_title("Enveloppe nationale : postes validés par le comité de sélection")
    ax.legend(loc="center right", frameon=False, fontsize=9)
    fig.tight_layout()
    return _svg(fig, "Consommation de l'enveloppe nationale mois par mois")


CHARTS = {
    "entonnoir": chart_funnel,
    "delais-signature": chart_sign_delays,
    "echeances": chart_deadlines,
    "ruptures": chart_ruptures,
    "tresorerie": chart_cashflow,
    "enveloppe": chart_envelope,
}
