"""The report the ANCT reads: a static French HTML page, and its Markdown summary.

``render`` writes the page from ``templates/report.html.j2`` with every chart
inline, so it reads offline with no external asset; ``markdown_summary``
gives the headline figures and the reconciliation for a Prefect artifact.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import jinja2
from markupsafe import Markup

from states.applications.table import LABELS as APPLICATION_LABELS
from states.french import FILTERS as FRENCH
from states.lifecycle import LABELS, State
from states.outbox.render import CONTRACT_TYPES, euros, french_day, french_instant
from states.paths import TEMPLATES
from states.simulation.charts import CHARTS
from states.simulation.figures import (
    DEADLINE_KINDS,
    DEADLINE_LABELS,
    MISSED_LABEL,
    MISSED_RATE_LABEL,
    Figures,
    french_number,
    headline,
    month_label,
)
from states.simulation.reconciliation import Reconciliation

#: The rules that refuse an action, as the report names them (``ConumError.rule``).
RULE_LABELS = {
    "lifecycle": "Étape non permise depuis l'état du dossier (action trop tardive)",
    "salary_at_least_smic": "Salaire inférieur au SMIC en vigueur",
    "within_quota": "Structure au complet (quota de postes)",
    "candidate_free": "Candidat déjà sous contrat",
    "not_presented_twice": "Candidat déjà présenté à cette structure",
    "history_moves_forward": "Date antérieure au dernier événement du dossier",
    "actor_may_fire": "Acteur non autorisé",
    "permission": "Acteur non autorisé",
    "contract_dates_valid": "Dates de contrat incohérentes",
    "contract_type_allowed": "Type de contrat inconnu",
    "rupture_within_contract": "Date de rupture hors du contrat",
    "rupture_reason_allowed": "Motif de rupture inconnu",
    "training_dates_valid": "Date de formation incohérente",
    "known_training_org": "Organisme de formation non habilité",
    "funded_within_convention": "Période financée au-delà de la convention",
    "not_in_future": "Action datée dans le futur",
    "candidate_not_anonymised": "Candidat anonymisé",
    "convention_signed": "Structure sans convention signée avec l'État",
    "conflict": "Dossier modifié entre-temps",
}


#: The rules of a structure's application, as the report names them.
APPLICATION_RULE_LABELS = {
    "within_envelope": "Enveloppe de postes dépassée (comité de sélection)",
    "posts_within_request": "Plus de postes validés que demandés",
    "opinion_allowed": "Avis du préfet inconnu",
    "convention_start_valid": "Dates de convention incohérentes",
    "posts_not_under_contract": "Poste rendu encore sous contrat",
    "change_within_limits": "Modification de postes impossible",
    "no_active_contract": "Dossier clos avec des contrats actifs",
    "convention_signed": "Convention de la structure non signée",
}
#: Every rule the report names: the cases' and the applications'.
ALL_RULE_LABELS = {**RULE_LABELS, **APPLICATION_RULE_LABELS}


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        euros=euros,
        n=french_number,
        month=month_label,
        label=lambda s: LABELS[State(s)],
        day=french_day,
        instant=french_instant,
        **FRENCH,
    )
    return env


def render(
    figures: Figures,
    reconciliation: Reconciliation,
    path: Path | str,
    *,
    generated_at: datetime | None = None,
    parameters: Iterable[tuple[str, str]] = (),
) -> Path:
    """Write the report page at ``path``; return its absolute path."""
    charts = {key: Markup(make(figures)) for key, make in CHARTS.items()}
    html = (
        _env()
        .get_template("report.html.j2")
        .render(
            f=figures,
            headline=headline(figures),
            charts=charts,
            rec=reconciliation,
            states=[(s.value, LABELS[s]) for s in State],
            deadline_kinds=[(k, DEADLINE_LABELS[k]) for k in DEADLINE_KINDS],
            missed_label=MISSED_LABEL,
            missed_rate_label=MISSED_RATE_LABEL,
            generated_at=generated_at,
            parameters=list(parameters),
            rule_labels=ALL_RULE_LABELS,
            application_labels={state.value: label for state, label in APPLICATION_LABELS.items()},
            contract_labels=CONTRACT_TYPES,
            refused=sorted((figures.run.get("refused") or {}).items(), key=lambda item: -int(item[1])),
        )
    )
    out = Path(path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def markdown_summary(figures: Figures, reconciliation: Reconciliation, report_path: str | None = None) -> str:
    """The headline figures and the reconciliation as Markdown (a Prefect artifact)."""
    lines = ["# Programme simulé", "", "| Indicateur | Valeur |", "|---|---|"]
    lines += [f"| {h.label} | {h.value} |" for h in headline(figures)]
    lines += ["", "## Rapprochement", ""]
    for c in reconciliation.checks:
        lines.append(
            f"- {'OK' if c.ok else 'ÉCART'} — {c.label} "
            f"({french_number(c.checked)} vérifiés, {len(c.violations)} écart(s))"
        )
        lines += [f"  - {v}" for v in c.violations[:10]]
    if report_path:
        lines += ["", f"Rapport complet : `{report_path}`"]
    return "\n".join(lines) + "\n"
