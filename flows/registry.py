"""Register and load, from the Prefect UI: one form each, in French.

- ``add-structure``, ``add-candidate``, ``add-training-org``: add one row, as ``conum structure add``,
  ``conum candidate add`` and ``conum training-org add`` do (a structure is recorded as imported in its
  history);
- ``present-candidate``: present a candidate of the pool to a structure, which opens a case (its page,
  artifact ``case-<id>``, is published and the run tagged ``case:<id>``);
- ``import-csv``: load the national platform's export of structures or candidates, pasted into the
  form's text field (``states.imports``; columns in ``docs/import.md``). All rows or none; the report
  (artifact ``import-structures`` or ``import-candidats``) lists every bad line with its reason. The
  dry run (« essai à blanc », on by default) writes nothing.

A refusal ends the run ``Failed`` with one French line, and no traceback, as the action forms do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from pydantic import Field
from pydantic.fields import FieldInfo

from flows.actions import ACTOR_HELP, ACTOR_PATTERN, one_line, publish_page, tag_run, where
from flows.common import engine, instant, markdown, policy
from states import import_rows, imports, registry, service
from states.db import write_session
from states.errors import ConumError
from states.geo import DEPARTEMENTS
from states.refusals import french
from states.views import case_view

if TYPE_CHECKING:
    Departement = str
else:  # a drop-down of the département codes
    Departement = Literal[tuple(DEPARTEMENTS)]
#: What the form's structure types are called, and what the core calls them.
KINDS = {"publique (collectivité)": "public", "privée (association)": "private"}
#: The import form's choice, and what ``states.imports`` calls it.
IMPORT_KINDS = {"structures": "structures", "candidats": "candidates"}


def ask(default: Any, *, title: str, description: str | None = None, **constraints: Any) -> Any:
    """A form field with a French title: Prefect titles a parameter with its name, the schema's extra wins."""
    info: FieldInfo = Field(default, description=description, json_schema_extra={"title": title}, **constraints)
    return info


def refused(exc: ConumError, line: str | None = None) -> State:
    """End the run ``Failed`` with one French line; the core's own message follows in the logs."""
    logger = get_run_logger()
    line = line or french(exc)
    logger.error("%s", line)
    logger.info("détail : %s", one_line(str(exc)))
    return Failed(message=line)


Acteur = ask("admin", pattern=ACTOR_PATTERN, description=ACTOR_HELP, title="Qui agit")


@flow(name="add-structure", flow_run_name="add-structure", retries=0, persist_result=False)
def add_structure(
    nom: str = ask(..., min_length=1, max_length=import_rows.MAX_NAME, title="Nom de la structure"),
    departement: Departement = ask(..., title="Département", description="Code du département : 01, 33, 2A, 974…"),
    postes: int = ask(..., ge=1, le=import_rows.MAX_POSTS, title="Postes attribués"),
    statut: Literal[tuple(KINDS)] = ask(  # type: ignore[valid-type]
        "publique (collectivité)", title="Type de structure"
    ),
    siret: str | None = ask(
        None, pattern=r"^\s*(\d\s*){14}$", title="SIRET", description="14 chiffres ; la clé est vérifiée."
    ),
    courriel: str | None = ask(
        None,
        max_length=import_rows.MAX_EMAIL,
        title="Courriel",
        description="Adresse de contact pour les notifications.",
    ),
    acteur: str = Acteur,
) -> State:
    """Ajouter une structure d'accueil dont les postes ont été validés hors de Conum (son historique le dit)."""
    try:
        with write_session(engine()) as session:
            sid = registry.add_structure(
                session,
                name=nom,
                departement=departement,
                posts=postes,
                kind=KINDS[statut],
                email=courriel or None,
                siret=siret,
                actor=acteur,
                at=instant(None),
            )
    except ConumError as exc:
        return refused(exc)
    line = f"Structure n° {sid} ajoutée ({departement}, {postes} poste(s))."
    get_run_logger().info("%s", line)
    return Completed(message=line, data={"id": sid})


@flow(name="add-candidate", flow_run_name="add-candidate", retries=0, persist_result=False)
def add_candidate(
    nom: str = ask(..., min_length=1, max_length=import_rows.MAX_NAME, title="Prénom et nom"),
    courriel: str = ask(..., max_length=import_rows.MAX_EMAIL, title="Courriel", description="nom@domaine.fr"),
    departement: Departement | None = ask(None, title="Département de résidence"),
    consentement: bool = ask(
        False,
        title="Consentement",
        description="Le candidat accepte d'être conservé plus longtemps dans le vivier.",
    ),
    acteur: str = Acteur,
) -> State:
    """Ajouter un candidat au vivier national (données utiles au recrutement seulement)."""
    try:
        with write_session(engine()) as session:
            cid = registry.add_candidate(
                session, name=nom, email=courriel, departement=departement, consent=consentement, actor=acteur
            )
    except ConumError as exc:
        return refused(exc)
    line = f"Candidat n° {cid} ajouté au vivier."
    get_run_logger().info("%s", line)
    return Completed(message=line, data={"id": cid})


@flow(name="add-training-org", flow_run_name="add-training-org", retries=0, persist_result=False)
def add_training_org(
    nom: str = ask(..., min_length=1, max_length=import_rows.MAX_NAME, title="Nom de l'organisme habilité"),
    courriel: str | None = ask(None, max_length=import_rows.MAX_EMAIL, title="Courriel"),
    acteur: str = Acteur,
) -> State:
    """Ajouter un organisme de formation habilité."""
    try:
        with write_session(engine()) as session:
            oid = registry.add_training_org(session, name=nom, email=courriel or None, actor=acteur)
    except ConumError as exc:
        return refused(exc)
    line = f"Organisme de formation n° {oid} ajouté."
    get_run_logger().info("%s", line)
    return Completed(message=line, data={"id": oid})


@flow(
    name="present-candidate",
    flow_run_name="present-candidate-{candidat}-structure-{structure}",
    retries=0,
    persist_result=False,
)
def present_candidate(
    structure: int = ask(..., ge=1, title="Structure", description="Numéro de la structure d'accueil."),
    candidat: int = ask(..., ge=1, title="Candidat", description="Numéro du candidat dans le vivier."),
    acteur: str = Acteur,
) -> State:
    """Présenter un candidat du vivier à une structure : ouvre un dossier, dont la page est publiée."""
    try:
        with write_session(engine()) as session:
            case = service.present(
                session,
                structure,
                candidat,
                actor=acteur,
                at=instant(None),
                policy=policy(),
                flow_run_id=flow_run.id,
            )
            case_id = case.id or 0
            view = case_view(session, case)
    except ConumError as exc:
        return refused(exc)
    _, departement, _ = where(case_id)
    tag_run(f"case:{case_id}", f"departement:{departement}")
    line = publish_page(case_id)
    get_run_logger().info("%s", line)
    return Completed(message=line, data=view)


@flow(name="import-csv", flow_run_name="import-{fichier}", retries=0, persist_result=False)
def import_csv(
    fichier: Literal["structures", "candidats"] = ask(
        ..., title="Contenu du fichier", description="Ce que liste l'export : des structures ou des candidats."
    ),
    contenu: str = ask(
        ...,
        min_length=1,
        max_length=imports.MAX_BYTES,
        title="Fichier CSV (collé)",
        description=(
            "Ouvrez l'export de la plateforme nationale dans un éditeur de texte, copiez tout (ligne d'en-tête "
            "comprise) et collez-le ici. Séparateur ; ou , ; en-têtes en français (voir la documentation de l'import)."
        ),
    ),
    essai: bool = ask(
        True,
        title="Essai à blanc",
        description="Vérifier le fichier et produire le rapport sans rien enregistrer. Décochez pour importer.",
    ),
    acteur: str = Acteur,
) -> State:
    """Charger un export de la plateforme nationale : toutes les lignes ou aucune, chaque erreur signalée."""
    kind = IMPORT_KINDS[fichier]
    key = f"import-{fichier}"
    try:
        with write_session(engine()) as session:
            report = imports.load(
                session,
                contenu.encode("utf-8"),
                kind,  # type: ignore[arg-type]
                dry_run=essai,
                actor=acteur,
                at=instant(None),
            )
    except imports.ImportRefused as exc:
        markdown(key, imports.report_markdown(exc.report), f"Import de {fichier} refusé")
        return refused(exc, exc.report.refusal_fr())
    except ConumError as exc:
        return refused(exc)
    text = imports.report_markdown(report)
    if essai:
        markdown(key, text, f"Essai à blanc d'un import de {fichier}")
        if not report.ok:
            return refused(imports.ImportRefused(report), report.refusal_fr())
        line = f"Essai à blanc : le fichier est correct, {len(report.values)} {fichier} seraient ajoutés."
    else:
        markdown(key, text, f"Import de {fichier}")
        line = f"{len(report.created)} {fichier} ajoutés."
    get_run_logger().info("%s", line)
    return Completed(message=line, data=report.as_dict())
