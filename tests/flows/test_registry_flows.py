"""Register and load from the UI: one form each in French, an import with its report, refusals on one line."""

from __future__ import annotations

from typing import Any

from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from prefect.utilities.callables import parameter_schema
from sqlmodel import select

from flows import registry
from states.applications.models import Application
from states.applications.rules import luhn_ok
from states.db import read_session
from states.models import Candidate, Case, Structure, TrainingOrg


def siret(n: int) -> str:
    base = f"{n:013d}"
    return next(base + str(k) for k in range(10) if luhn_ok(base + str(k)))


def _logs(run_id: Any) -> list[str]:
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        return [log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))]


def _artifact(key: str) -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact {key}"
    return str(sorted(found, key=lambda a: a.created)[-1].data)


def test_the_forms_are_typed_and_in_french() -> None:
    schema = parameter_schema(registry.add_structure).model_dump()
    props = schema["properties"]
    assert list(props) == ["nom", "departement", "postes", "statut", "siret", "courriel", "acteur"]
    assert set(schema["required"]) == {"nom", "departement", "postes"}
    assert "33" in props["departement"]["enum"] and "2A" in props["departement"]["enum"]
    assert props["postes"]["type"] == "integer" and props["nom"]["title"] == "Nom de la structure"
    assert props["statut"]["enum"] == ["publique (collectivité)", "privée (association)"]
    imp = parameter_schema(registry.import_csv).model_dump()
    assert imp["properties"]["fichier"]["enum"] == ["structures", "candidats"]
    assert imp["properties"]["contenu"]["type"] == "string" and imp["properties"]["essai"]["default"] is True
    present = parameter_schema(registry.present_candidate).model_dump()
    assert list(present["properties"]) == ["structure", "candidat", "acteur"]


def test_add_a_structure_a_candidate_an_organisation_then_present_the_candidate(conum_env: Any) -> None:
    s = registry.add_structure(
        nom="Mairie de Poitiers", departement="86", postes=2, siret=siret(7), acteur="admin", return_state=True
    )
    assert s.is_completed(), s.message
    c = registry.add_candidate(nom="Camille Durand", courriel="camille@exemple.fr", return_state=True)
    o = registry.add_training_org(nom="Simplon.co", return_state=True)
    assert c.is_completed() and o.is_completed()
    with read_session(conum_env.engine) as db:
        structure = db.exec(select(Structure)).one()
        candidate = db.exec(select(Candidate)).one()
        assert db.exec(select(TrainingOrg.name)).one() == "Simplon.co"
        assert db.exec(select(Application.siret)).one() == siret(7)
    assert s.message == f"Structure n° {structure.id} ajoutée (86, 2 poste(s))."

    p = registry.present_candidate(structure=structure.id, candidat=candidate.id, return_state=True)

    assert p.is_completed(), p.message
    with read_session(conum_env.engine) as db:
        case = db.exec(select(Case)).one()
    assert case.state == "candidate_presented"
    assert f"Dossier n° {case.id}" in (p.message or "") and "Camille Durand" in (p.message or "")
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(p.state_details.flow_run_id)
    assert {f"case:{case.id}", "departement:86"} <= set(run.tags)
    assert f"# Dossier n° {case.id} — Candidat présenté" in _artifact(f"case-{case.id}")


def test_refusals_are_one_french_line_without_traceback(conum_env: Any) -> None:
    state = registry.add_candidate(nom="X", courriel="x@exemple.fr", acteur="system", return_state=True)
    assert state.is_failed()
    assert (state.message or "").startswith("Refusé (règle permission) :")
    missing = registry.present_candidate(structure=41, candidat=42, return_state=True)
    assert missing.is_failed() and (missing.message or "").startswith("Refusé (règle not_found) :")
    logs = _logs(missing.state_details.flow_run_id)
    assert not any("Traceback" in m for m in logs)
    with read_session(conum_env.engine) as db:
        assert db.exec(select(Candidate)).all() == [] and db.exec(select(Case)).all() == []


def test_import_dry_run_import_then_a_refused_file_with_its_report(conum_env: Any) -> None:
    text = (
        "Nom;SIRET;Département;Postes;Type\n"
        f"Mairie de Bègles;{siret(1)};33;2;publique\n"
        f"Association <b>Clic</b>;{siret(2)};2A;1;privée\n"
    )
    dry = registry.import_csv(fichier="structures", contenu=text, return_state=True)
    assert dry.is_completed(), dry.message
    assert dry.message == "Essai à blanc : le fichier est correct, 2 structures seraient ajoutés."
    report = _artifact("import-structures")
    assert "essai à blanc" in report and "Mairie de Bègles" in report and "<b>" not in report
    with read_session(conum_env.engine) as db:
        assert db.exec(select(Structure)).all() == []

    done = registry.import_csv(fichier="structures", contenu=text, essai=False, return_state=True)
    assert done.is_completed() and done.message == "2 structures ajoutés."

    again = text + f"=cmd|' /C calc'!A0;{siret(3)};33;1;publique\n"
    refused = registry.import_csv(fichier="structures", contenu=again, essai=False, return_state=True)
    assert refused.is_failed()
    assert refused.message == (
        "Refusé (règle import) : 3 erreur(s) dans le fichier de structures, rien n'a été importé : "
        "corrigez les lignes signalées dans le rapport de la run et relancez."
    )
    report = _artifact("import-structures")
    assert "| ligne 2 |" in report and "| ligne 3 |" in report and "| ligne 4 |" in report
    assert "déjà enregistré" in report and "formule de tableur" in report
    assert not any("Traceback" in m for m in _logs(refused.state_details.flow_run_id))
    with read_session(conum_env.engine) as db:
        assert len(db.exec(select(Structure)).all()) == 2
