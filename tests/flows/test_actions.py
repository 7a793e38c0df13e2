"""The action forms: one deployment per operator action, only its fields, in French; refusals as one French line."""

from __future__ import annotations

from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from prefect.utilities.callables import parameter_schema

from flows import actions
from states.db import read_session
from states.lifecycle import EVENTS
from states.models import Case


def _logs(run_id: Any) -> list[str]:
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        return [log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))]


def _page(case_id: int) -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"case-{case_id}"])))
    assert found, f"no artifact case-{case_id}"
    return str(sorted(found, key=lambda a: a.created)[-1].data)


def test_only_operator_events_have_a_form() -> None:
    internal = {e.name for e in EVENTS if e.internal}
    assert set(actions.FLOW_NAMES).isdisjoint(internal)
    assert set(actions.FLOW_NAMES) == {e.name for e in EVENTS if not e.internal}


def test_the_contract_form_asks_only_for_the_contract_with_french_titles_drop_downs_and_date_pickers() -> None:
    schema = parameter_schema(actions.sign_contract).model_dump()
    assert list(schema["properties"]) == ["dossier", "donnees", "acteur"]
    form = schema["definitions"]["ContractDataForm"]
    assert form["title"] == "Signer le contrat"
    assert set(form["properties"]) == {"type", "start", "end", "salary"}
    assert form["required"] == ["type", "start", "salary"]
    assert form["properties"]["type"]["enum"] == ["CDI", "CDD", "PEC", "contrat_de_projet"]
    assert form["properties"]["start"] == {**form["properties"]["start"], "format": "date", "type": "string"}
    assert form["properties"]["end"]["format"] == "date" and "anyOf" not in form["properties"]["end"]
    assert form["properties"]["salary"]["title"] == "Salaire brut mensuel (€)"
    assert form["properties"]["salary"]["type"] == "string"  # money is never a float


def test_an_action_without_data_asks_only_for_the_case_and_who_acts() -> None:
    schema = parameter_schema(actions.select_candidate).model_dump()
    assert list(schema["properties"]) == ["dossier", "acteur"]
    assert schema["required"] == ["dossier"]


def test_an_action_form_changes_the_case_says_what_it_is_and_publishes_its_page(world: Any, conum_env: Any) -> None:
    structure = world.structure(departement="86")
    case = world.present(structure, world.candidate(), at="2026-03-01T10:00")
    world.fire(case, "select", "2026-03-02T10:00")
    world.fire(case, "contact_training_org", "2026-03-03T10:00", org=str(world.org))

    state = actions.sign_contract(
        dossier=case,
        donnees={"type": "CDD", "start": "2026-04-01", "end": "2028-03-31", "salary": "1900.00"},
        acteur=f"structure:{structure}",
        return_state=True,
    )

    assert state.is_completed(), state.message
    assert f"Dossier n° {case}" in (state.message or "") and "« Contrat signé »" in (state.message or "")
    with read_session(conum_env.engine) as s:
        row = s.get(Case, case)
        assert row is not None and row.state == "contract_signed" and row.salary_cents == 190000
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert {f"case:{case}", "departement:86"} <= set(run.tags)
    assert run.name == f"sign-contract-dossier-{case}"
    page = _page(case)
    assert f"# Dossier n° {case} — Contrat signé" in page
    assert "**▶ Contrat signé**" in page
    assert "1\xa0900,00\xa0€" in page and "Signer le contrat" in page


def test_a_refused_action_fails_with_one_french_line_naming_the_rule_and_no_traceback(
    world: Any, conum_env: Any
) -> None:
    case = world.present(world.structure(), world.candidate(), at="2026-03-01T10:00")

    state = actions.complete_training(dossier=case, return_state=True)

    assert state.is_failed()
    assert state.message == (
        "Refusé (règle lifecycle) : le dossier est à l'étape « Candidat présenté », d'où cette action n'est pas "
        "possible ; actions possibles : « Retenir le candidat », « Décliner », « Retrait du candidat », "
        "« Annuler le dossier »."
    )
    logs = _logs(state.state_details.flow_run_id)
    assert any(m.startswith("Refusé (règle lifecycle)") for m in logs)
    assert not any("Traceback" in m for m in logs)
    with read_session(conum_env.engine) as s:
        row = s.get(Case, case)
        assert row is not None and row.state == "candidate_presented" and row.version == 1


def test_a_refusal_run_as_a_worker_runs_it_logs_no_traceback(
    world: Any, conum_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # a worker's process runs the flow through run_flow with the run's logger as its error logger
    import logging

    from prefect.exceptions import FailedRun
    from prefect.flow_engine import run_flow

    case = world.present(world.structure(), world.candidate(), at="2026-03-01T10:00")

    with caplog.at_level(logging.INFO), pytest.raises(FailedRun):
        run_flow(
            actions.complete_training,
            parameters={"dossier": case, "donnees": {}, "acteur": "admin"},
            error_logger=logging.getLogger("prefect.flow_runs"),
        )

    assert any(r.getMessage().startswith("Refusé (règle lifecycle)") for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info], "a refusal is an answer, not a crash"


def test_nobody_acts_as_system_from_a_form(world: Any, conum_env: Any) -> None:
    case = world.present(world.structure(), world.candidate(), at="2026-03-01T10:00")

    state = actions.withdraw_candidate(dossier=case, acteur="system", return_state=True)

    assert state.is_failed()
    assert (state.message or "").startswith("Refusé (règle actor_may_fire) :")
    assert "personne n'agit en tant que system" in (state.message or "")


def test_a_run_whose_creator_the_server_knows_records_it_in_the_history(world: Any, conum_env: Any) -> None:
    # Prefect's open-source server fills a run's created_by for the runs an automation creates (these headers):
    # a server that knows its users does the same for each person
    import base64
    import contextlib
    from uuid import uuid4

    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.objects import FlowRun
    from prefect.flow_engine import run_flow

    from states.audit import verify
    from states.views import case_view

    case = world.present(world.structure(departement="86"), world.candidate(), at="2026-03-01T10:00")
    with get_client(sync_client=True) as client, contextlib.suppress(Exception):
        client.create_work_pool(WorkPoolCreate(name="conum-test", type="process"))
    deployment = actions.select_candidate.to_deployment(name="select-candidate", work_pool_name="conum-test").apply()
    with get_client(sync_client=True) as client:
        created = client.request(
            "POST",
            "/deployments/{id}/create_flow_run",
            path_params={"id": deployment},
            json={"parameters": {"dossier": case, "acteur": "admin"}},
            headers={
                "Prefect-Automation-ID": str(uuid4()),
                "Prefect-Automation-Name": base64.b64encode(b"Relance des dossiers").decode(),
            },
        )
        run = FlowRun.model_validate(created.json())
    assert run.created_by is not None and run.created_by.type == "AUTOMATION"

    state = run_flow(actions.select_candidate, flow_run=run, parameters=run.parameters, return_type="state")

    assert state.is_completed(), state.message
    with read_session(conum_env.engine) as session:
        last = case_view(session, session.get(Case, case))["history"][-1]
    assert last["actor"] == "admin"  # the declared actor stays, beside who created the run
    assert last["flow_run_id"] == str(run.id)
    assert last["created_by"] == "automation:Relance des dossiers"
    assert verify(conum_env.engine, case).ok  # the chain covers it
    assert "exécution lancée par : automatisation Relance des dossiers" in _page(case)


def test_a_run_on_the_open_source_server_records_no_creator(world: Any, conum_env: Any) -> None:
    case = world.present(world.structure(departement="86"), world.candidate(), at="2026-03-01T10:00")

    assert actions.select_candidate(dossier=case, return_state=True).is_completed()

    with read_session(conum_env.engine) as session:
        last = case_view_of(session, case)["history"][-1]
    assert "created_by" not in last and last["flow_run_id"]
    assert actions.creator(None) is None


def case_view_of(session: Any, case_id: int) -> dict[str, Any]:
    from states.views import case_view

    case = session.get(Case, case_id)
    assert case is not None
    return case_view(session, case)
