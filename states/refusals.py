"""A refusal as a French operator reads it: one line that names the rule and says what to do.

The core's messages are English and carry the exact figures (the CLI prints them). The Prefect UI is
read by French agents: a refused run ends with ``french(error)``, one line in French naming the rule
(its name as the README and ``conum events`` list it) and what to do about it. Nothing a person typed
is read as markup here: the values quoted come from the database or the core's own checks.
"""

from __future__ import annotations

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
}


def _labels(events: list[str]) -> str:
    return ", ".join(f"« {BY_NAME[e].label} »" for e in events) or "aucune (le dossier est clos)"


def french(error: ConumError, *, state: str | None = None) -> str:
    """Return the refusal of ``error`` as one French line: « Refusé (règle rule) : what to do ».

    ``state`` is the case's state when the refusal came from the lifecycle (an action not allowed from it):
    the line then names the state and the actions allowed from it.
    """
    rule = error.rule
    if rule == "lifecycle" and state is not None:
        current = State(state)
        advice = (
            f"le dossier est à l'étape « {LABELS[current]} », d'où cette action n'est pas possible ; "
            f"actions possibles : {_labels(allowed_events(current))}"
        )
    elif rule == "lifecycle":
        advice = "cette action n'est pas possible à l'étape où se trouve le dossier : consultez la page du dossier"
    else:
        advice = ADVICE.get(rule, "l'action est refusée : vérifiez le dossier et relancez")
    return f"Refusé (règle {rule}) : {advice}."
