"""A case's page, in French markdown: what an agent reads in the Prefect UI (artifact ``case-<id>``).

Its labels come from ``states.labels`` (one place for every French word of the UI). Everything a
person typed (names, reasons) is data: ``text()`` escapes every markdown and HTML character and shows
a line break as a space, so that a name cannot add a link, an image, a heading or a table row to the
page.
"""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import Session

from states.labels import ESCALATION, event_label, state_label, text
from states.outbox.render import CONTRACT_TYPES, RUPTURE_REASONS, euros, french_day, french_instant
from states.views import case_page

__all__ = ["event_label", "page_markdown", "render", "state_label", "summary", "text"]

_TRANCHE_STATUS = {"scheduled": "à verser", "paid": "versée", "cancelled": "annulée"}


def _day(value: str | None) -> str:
    return french_day(value) if value else "—"


def _actor(actor: str) -> str:
    kind, _, ref = actor.partition(":")
    return {
        "admin": "ANCT (admin)",
        "system": "Conum (automatique)",
        "structure": f"structure n° {ref}",
        "candidate": f"candidat n° {ref}",
        "prefet": f"préfecture ({ref})",
    }.get(kind, text(actor))


def _creator(created_by: str | None) -> str:
    """Say who created the flow run, where the Prefect server knows it (not Prefect's open-source server)."""
    if not created_by:
        return ""
    kind, _, name = created_by.partition(":")
    who = {"user": "utilisateur", "automation": "automatisation", "schedule": "planification"}.get(kind, text(kind))
    return f" — exécution lancée par : {who} {text(name)}"


def _data(data: dict[str, Any]) -> str:
    shown = []
    for key, value in data.items():
        if key == "type":
            shown.append(f"contrat {text(CONTRACT_TYPES.get(str(value), value))}")
        elif key == "reason":
            shown.append(f"motif : {text(RUPTURE_REASONS.get(str(value), value))}")
        elif key.endswith("_cents") and isinstance(value, int):
            shown.append(euros(value))
        elif key in ("start", "end", "date") and isinstance(value, str):
            shown.append(f"{ {'start': 'début', 'end': 'fin', 'date': 'le'}[key] } {french_day(value)}")
        elif key == "org":
            shown.append(f"organisme n° {text(value)}")
        else:
            shown.append(f"{text(key)} : {text(value)}")
    return " ; ".join(shown) or "—"


def summary(page: dict[str, Any], *, plain: bool = False) -> str:
    """Return one French sentence that says what the case is: its state, structure and candidate.

    Markdown (the case's page) by default; ``plain`` for a run's message and logs, which Prefect shows as
    they are: names on one line, no markdown escapes.
    """
    s, c = page["structure"], page["candidate"]
    show = (lambda v: " ".join(str(v).split())) if plain else text
    who = "candidat anonymisé" if c["anonymised"] else show(c["name"])
    return (
        f"Dossier n° {page['id']} : {who} (candidat n° {c['id']}) présenté à {show(s['name'])} "
        f"(structure n° {s['id']}, département {show(s['departement'])}) — étape « {state_label(page['state'])} »."
    )


def render(page: dict[str, Any]) -> str:
    """Return the case's page as markdown (French)."""
    s = page["structure"]
    lines = [f"# Dossier n° {page['id']} — {state_label(page['state'])}", "", summary(page), ""]
    lines += ["## Parcours", ""]
    marks = {"done": "✓", "current": "▶", "todo": "·"}
    path = [
        f"**{marks['current']} {step['label']}**"
        if step["status"] == "current"
        else f"{marks[step['status']]} {step['label']}"
        for step in page["path"]
    ]
    lines += [" → ".join(path), ""]
    lines += ["## Échéance", ""]
    if page["open"] and page.get("deadline_at"):
        lines.append(f"- Échéance : {french_instant(page['deadline_at'])}")
    else:
        lines.append("- Échéance : aucune")
    if page.get("due_at"):
        lines.append(f"- Prochaine étape automatique (relance, escalade ou délai) : {french_instant(page['due_at'])}")
    lines.append(f"- Escalade : {ESCALATION.get(page['escalation_level'], str(page['escalation_level']))}")
    lines.append(
        f"- Structure : {text(s['name'])}, {s['posts']} poste(s), {'privée' if s['kind'] == 'private' else 'publique'}"
    )
    lines.append("")
    lines += ["## Contrat", ""]
    contract = page.get("contract")
    if contract:
        org = page.get("training_org")
        lines.append(f"- Type : {text(CONTRACT_TYPES.get(contract['type'], contract['type']))}")
        lines.append(
            f"- Du {_day(contract['start'])} au {_day(contract['end']) if contract['end'] else '— (sans fin)'}"
        )
        if contract.get("salary_cents") is not None:
            lines.append(f"- Salaire brut mensuel : {euros(contract['salary_cents'])}")
        if org:
            lines.append(f"- Organisme de formation : {text(org['name'])} (n° {org['id']})")
        if page.get("subsidy_cents") is not None:
            lines.append(
                f"- Subvention : {euros(page['subsidy_cents'])} ({contract.get('funded_months')} mois financés)"
            )
        if page.get("recovery_cents"):
            lines.append(f"- À reverser : {euros(page['recovery_cents'])}")
    else:
        org = page.get("training_org")
        lines.append(
            "Pas encore de contrat." + (f" Organisme de formation contacté : {text(org['name'])}." if org else "")
        )
    lines.append("")
    lines += ["## Tranches", ""]
    if page["tranches"]:
        lines += ["| Tranche | Montant | Échéance | État | Versée le |", "|---|---|---|---|---|"]
        for t in page["tranches"]:
            lines.append(
                f"| {t['number']} | {euros(t['amount_cents'])} | {_day(t['due_on'])} | "
                f"{_TRANCHE_STATUS.get(t['status'], text(t['status']))} | {_day(t['paid_at'])} |"
            )
    else:
        lines.append("Aucune tranche (elles naissent à la signature du contrat).")
    lines.append("")
    lines += [
        "## Historique",
        "",
        "| Quand | Qui | Action | De | Vers | Détail | Exécution |",
        "|---|---|---|---|---|---|---|",
    ]
    for h in page["history"]:
        run = f"`{re.sub(r'[^0-9a-f]', '', str(h['flow_run_id']))[:8]}`" if h.get("flow_run_id") else "—"
        who = _actor(h["actor"]) + _creator(h.get("created_by"))
        lines.append(
            f"| {french_instant(h['at'])} | {who} | {event_label(h['event'])} | "
            f"{state_label(h['from'])} | {state_label(h['to'])} | {_data(h['data'])} | {run} |"
        )
    return "\n".join(lines) + "\n"


def page_markdown(session: Session, case_id: int) -> str:
    """Return the markdown page of a case read from the database."""
    return render(case_page(session, case_id))
