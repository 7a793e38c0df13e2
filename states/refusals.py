"""A refusal as a French operator reads it: one line that names the rule and says what to do.

The core's messages are English and carry the exact figures (the CLI prints them). The Prefect UI is
read by French agents: a refused run ends with ``french(error)``, one line in French naming the rule
(its name as the README and ``conum events`` list it) and what to do about it. Nothing a person typed
is read as markup here: the values quoted come from the database or the core's own checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from states.applications import table as application_table
from states.errors import ConumError
from states.lifecycle import BY_NAME, LABELS, State, allowed_events

#: What to do, per rule, in French.
ADVICE: dict[str, str] = {
    "actor_may_fire": (
        "cette personne ne peut pas faire cette action sur ce dossier : agissez en tant que admin, "
        "structure:<n°> (la structure du dossier), candidate:<n°> (son candidat) ou prefet:<département> ; "
        "personne n'agit en tant que system"
    ),
    "permission": "cette personne ne peut pas faire cette action : agissez en tant que admin",
    "not_in_future": "l'action est datée après l'heure actuelle : datez-la au plus tard maintenant",
    "history_moves_forward": (
        "l'action est datée avant le dernier fait du dossier : donnez un instant postérieur au dernier de l'historique"
    ),
    "candidate_not_anonymised": (
        "ce candidat a été anonymisé et a quitté le vivier : ajoutez-le de nouveau, avec son consentement"
    ),
    "not_presented_twice": "ce candidat est déjà présenté à cette structure : suivez le dossier ouvert",
    "known_training_org": (
        "cet organisme de formation n'existe pas : choisissez un numéro de la liste des organismes habilités "
        "ou ajoutez l'organisme d'abord"
    ),
    "contract_type_allowed": "ce type de contrat n'est pas admis : choisissez CDI, CDD, PEC ou contrat de projet",
    "contract_dates_valid": (
        "les dates du contrat ne conviennent pas : il commence après la sélection, dans les 12 mois de sa signature, "
        "dure au moins un mois entier et n'a de fin que s'il n'est pas un CDI ; corrigez le début ou la fin"
    ),
    "funded_within_convention": (
        "la période financée dépasse la convention de 36 mois signée avec l'État : faites commencer le contrat plus tôt"
    ),
    "salary_at_least_smic": (
        "le salaire est inférieur au SMIC en vigueur au début du contrat : proposez au moins le SMIC"
    ),
    "within_quota": (
        "la structure a déjà autant de contrats actifs que de postes attribués : "
        "mettez fin à un contrat ou demandez un poste de plus avant de signer"
    ),
    "candidate_free": (
        "ce candidat a déjà un contrat actif : il doit prendre fin d'abord, ou présentez un autre candidat"
    ),
    "training_dates_valid": (
        "la date de formation ne convient pas : elle suit le début du contrat, reste dans le contrat "
        "et n'est pas dans le futur ; corrigez la date"
    ),
    "rupture_reason_allowed": (
        "ce motif de rupture n'est pas admis : choisissez licenciement, demission, non_reconduction_cdd "
        "ou fin_de_subventionnement"
    ),
    "rupture_within_contract": (
        "la date de rupture ne convient pas : elle tombe dans le contrat, après le dernier fait du dossier "
        "et pas dans le futur ; corrigez la date"
    ),
    "not_found": "ce numéro ne correspond à rien : vérifiez le numéro (la liste des dossiers le donne)",
    "conflict": "le dossier a été modifié par quelqu'un d'autre entre-temps : relancez l'action",
    "input": "une donnée du formulaire ne convient pas : vérifiez les champs et relancez",
    "policy": "le fichier de politique du programme est invalide : faites-le corriger par l'administrateur",
    "guard": "une règle du programme refuse l'action : vérifiez le dossier et relancez",
    "import": "le fichier ne peut pas être chargé : corrigez les lignes signalées et relancez",
    # a structure's application
    "opinion_allowed": "l'avis n'est pas reconnu : choisissez favorable ou défavorable",
    "posts_within_request": (
        "le comité valide au moins un poste et au plus ceux demandés : validez moins de postes, ou refusez"
    ),
    "within_envelope": (
        "les postes validés dépasseraient l'enveloppe (nationale, ou celle de la région) : "
        "validez moins de postes, ou refusez"
    ),
    "posts_not_under_contract": (
        "un poste occupé par un contrat actif ne peut pas être rendu : rendez moins de postes, "
        "ou attendez la fin d'un contrat"
    ),
    "change_within_limits": (
        "la modification doit demander des postes en plus (nombre positif) ou en rendre au plus autant que "
        "la structure en détient (nombre négatif)"
    ),
    "convention_start_valid": (
        "les dates de la convention ne conviennent pas : elle commence le jour du comité ou après, "
        "et dure au plus 36 mois ; corrigez le début ou la fin"
    ),
    "no_active_contract": (
        "la structure a encore des contrats actifs : clôturez la candidature une fois qu'ils ont pris fin"
    ),
}


class _Steps:
    """How the refusal of an event not allowed names the row, its step and the actions allowed from it."""

    def __init__(
        self,
        row: str,
        closed: str,
        labels: Mapping[Any, str],
        state: Callable[[str], Any],
        allowed: Callable[[Any], list[str]],
        event_label: Callable[[str], str],
    ) -> None:
        self.row, self.closed, self.labels = row, closed, labels
        self.state, self.allowed, self.event_label = state, allowed, event_label


#: The two state machines: a case ("le dossier") and a structure's application ("la candidature").
STEPS: dict[str, _Steps] = {
    "case": _Steps("le dossier", "le dossier est clos", LABELS, State, allowed_events, lambda e: BY_NAME[e].label),
    "application": _Steps(
        "la candidature",
        "la candidature est close",
        application_table.LABELS,
        application_table.AppState,
        application_table.allowed_events,
        lambda e: application_table.BY_NAME[e].label,
    ),
}


def french(error: ConumError, *, state: str | None = None, subject: str = "case") -> str:
    """Return the refusal of ``error`` as one French line: « Refusé (règle rule) : what to do ».

    ``state`` is the row's state when the refusal came from the lifecycle (an action not allowed from it):
    the line then names the state and the actions allowed from it. ``subject`` says which machine the row
    belongs to: ``case`` or ``application``.
    """
    rule = error.rule
    steps = STEPS[subject]
    if rule == "lifecycle" and state is not None:
        current = steps.state(state)
        allowed = ", ".join(f"« {steps.event_label(e)} »" for e in steps.allowed(current))
        advice = (
            f"{steps.row} est à l'étape « {steps.labels[current]} », d'où cette action n'est pas possible ; "
            f"actions possibles : {allowed or f'aucune ({steps.closed})'}"
        )
    elif rule == "lifecycle":
        advice = f"cette action n'est pas possible à l'étape où se trouve {steps.row} : consultez sa page"
    else:
        advice = ADVICE.get(rule, "l'action est refusée : vérifiez le dossier et relancez")
    return f"Refusé (règle {rule}) : {advice}."
