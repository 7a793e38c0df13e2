"""The data each event of an application takes, typed once (the same machinery as a case's events).

The field types and their checks come from ``states.eventdata``; the stored
form (dates as ISO text) too. The submission's fields are typed here as well,
so that ``conum application events`` lists them.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from states.eventdata import Day, EventData, Text


class SubmitData(EventData):
    title: ClassVar[str] = "Déposer une candidature"
    name: Text = Field(title="Nom de la structure", description="Raison sociale de la structure.")
    siret: Text = Field(title="SIRET", description="Numéro SIRET à 14 chiffres de l'établissement.")
    kind: Text = Field(
        title="Nature",
        description="public (collectivité) ou private (association).",
        json_schema_extra={"enum": ["public", "private"]},
    )
    departement: Text = Field(title="Département", description="Code du département, par exemple 33, 2A ou 974.")
    posts: int = Field(title="Postes demandés", description="Nombre de conseillers numériques demandés.")
    duration: int = Field(24, title="Durée de contrat souhaitée (mois)", description="Entre 1 et 36 mois.")
    email: Text | None = Field(None, title="Courriel", description="Adresse de contact de la structure.")


class OpinionData(EventData):
    title: ClassVar[str] = "Avis du préfet"
    opinion: Text = Field(
        title="Avis",
        description="favourable ou unfavourable.",
        json_schema_extra={"enum": ["favourable", "unfavourable"]},
    )
    comment: Text | None = Field(None, title="Commentaire", description="Motif de l'avis (facultatif).")


class ValidateData(EventData):
    title: ClassVar[str] = "Décision du comité de sélection"
    posts: int = Field(title="Postes validés", description="Au plus le nombre de postes demandés.")
    committee: Text = Field(title="Comité de sélection", description="Numéro du comité (COSELEC).")
    date: Day | None = Field(
        None, title="Date du comité", description="Jour du comité (par défaut, celui de l'action)."
    )


class RefuseData(EventData):
    title: ClassVar[str] = "Refus du comité de sélection"
    reason: Text = Field(title="Motif", description="Pourquoi le comité refuse.")
    committee: Text | None = Field(None, title="Comité de sélection", description="Numéro du comité (COSELEC).")


class ConventionData(EventData):
    title: ClassVar[str] = "Signer la convention"
    start: Day = Field(title="Début de la convention", description="Premier jour de la convention (AAAA-MM-JJ).")
    end: Day | None = Field(
        None, title="Fin de la convention", description="Dernier jour ; au plus 36 mois après le début (par défaut)."
    )


class ChangeData(EventData):
    title: ClassVar[str] = "Modifier le nombre de postes"
    posts: int = Field(
        title="Postes en plus ou rendus", description="Nombre de postes demandés en plus (positif) ou rendus (négatif)."
    )
    reason: Text = Field(title="Motif", description="Pourquoi la structure demande cette modification.")


class ReasonData(EventData):
    title: ClassVar[str] = "Motif"
    reason: Text | None = Field(None, title="Motif", description="Motif (facultatif).")
