"""Applications in the inbox: a suspended decision run per application waiting on the préfet, the committee or
the structure; one form per event; refusals as one French line."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from applications.applying import Apps
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from prefect.states import Suspended
from prefect.utilities.callables import parameter_schema

from flows import applications
from flows.decisions import (
    APPLICATION_WAITING,
    CommitteeAnswer,
    ConventionAnswer,
    OpinionAnswer,
    _decision_runs,
    decide_application,
    follow_cases,
)
from states.applications.models import Application
from states.db import read_session
from states.policy import Policy


@pytest.fixture(scope="module", autouse=True)
def decide_application_deployment(prefect_harness: None) -> Iterator[None]:
    with get_client(sync_client=True) as client, contextlib.suppress(Exception):
        client.create_work_pool(WorkPoolCreate(name="conum-test", type="process"))
    decide_application.to_deployment(name="decide-application", work_pool_name="conum-test").apply()
    yield


@pytest.fixture
def apps(conum_env: Any) -> Apps:
    return Apps(conum_env.engine, Policy())


def _open_runs() -> list[Any]:
    with get_client(sync_client=True) as client:
        runs = _decision_runs(client, [], flow_name="decide-application")
    return [r for r in runs if r.state and not r.state.is_final()]


def _logs(run_id: Any) -> list[str]:
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        return [log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))]


def test_each_application_waiting_on_a_person_gets_one_named_tagged_decision(apps: Apps) -> None:
    submitted = apps.submit(posts=2, departement="86")
    reviewed = apps.submit(posts=3, departement="2A")
    apps.fire(reviewed, "give_opinion", "2026-01-06T10:00", actor="prefet:2A", opinion="favourable")
    refused = apps.submit(posts=1)
    apps.fire(refused, "give_opinion", "2026-01-06T10:00", opinion="unfavourable")
    apps.fire(refused, "refuse", "2026-01-07T10:00", reason="Hors critères")  # waits on nobody
    before = {r.id for r in _open_runs()}

    first = follow_cases()
    second = follow_cases()

    runs = {next(t for t in r.tags if t.startswith("application:")): r for r in _open_runs() if r.id not in before}
    assert first["applications_waiting"] == 2 and first["opened"] == 2 and second["opened"] == 0
    assert set(runs) == {f"application:{submitted}", f"application:{reviewed}"}
    opinion, committee = runs[f"application:{submitted}"], runs[f"application:{reviewed}"]
    assert {"decision", "departement:86", "etape:submitted"} <= set(opinion.tags)
    assert opinion.name == f"Candidature {submitted} : avis du préfet (Mairie, 86)"
    assert opinion.parameters == {"candidature": submitted}
    assert {"decision", "departement:2A", "etape:prefet_reviewed"} <= set(committee.tags)
    assert committee.name == f"Candidature {reviewed} : décision du comité de sélection (Mairie, 2A)"


def test_a_suspended_decision_whose_application_moved_on_is_closed_saying_why(apps: Apps) -> None:
    app = apps.submit(posts=2)
    follow_cases()
    run = next(r for r in _open_runs() if f"application:{app}" in r.tags)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Suspended(timeout_seconds=3600), force=True)
    apps.fire(app, "withdraw", "2026-01-06T10:00", actor="admin", reason="Projet abandonné")  # elsewhere

    figures = follow_cases()

    with get_client(sync_client=True) as client:
        closed = client.read_flow_run(run.id)
    assert figures["closed"] >= 1
    assert closed.state is not None and closed.state.is_completed()
    assert closed.state.message == (
        f"Plus de décision à prendre : la candidature n° {app} est maintenant à l'étape « Candidature retirée »."
    )


def test_a_decision_run_started_after_its_application_moved_on_ends_without_acting(apps: Apps) -> None:
    app = apps.validated(posts=2)
    apps.fire(app, "sign_convention", "2026-01-25T10:00", start="2026-02-01")

    state = decide_application(candidature=app, return_state=True)

    assert state.is_completed()
    assert state.message == (
        f"Plus de décision à prendre : la candidature n° {app} est maintenant à l'étape « Convention signée »."
    )


def test_the_forms_are_french_with_drop_downs() -> None:
    opinion = OpinionAnswer.model_json_schema()
    assert opinion["title"] == "Rendre l'avis du préfet"
    assert opinion["properties"]["avis"]["enum"] == ["favorable", "défavorable"]
    assert opinion["required"] == ["avis"]
    committee = CommitteeAnswer.model_json_schema()
    assert committee["properties"]["decision"]["enum"] == ["valider", "refuser"]
    assert committee["properties"]["date"]["format"] == "date"
    convention = ConventionAnswer.model_json_schema()
    assert convention["title"] == "Signer la convention"
    assert set(convention["properties"]) == {"start", "end", "acteur"}


def test_each_answer_fires_its_event() -> None:
    opinion, committee = APPLICATION_WAITING["submitted"], APPLICATION_WAITING["prefet_reviewed"]
    assert opinion.event(OpinionAnswer(avis="défavorable", commentaire="Doublon", acteur="prefet:33")) == (
        "give_opinion",
        {"opinion": "unfavourable", "comment": "Doublon"},
        "prefet:33",
    )
    assert opinion.event(OpinionAnswer(avis="favorable")) == ("give_opinion", {"opinion": "favourable"}, "admin")
    validate = CommitteeAnswer.model_validate(
        {"decision": "valider", "postes": 2, "comite": "C7", "date": "2026-02-03"}
    )
    assert committee.event(validate) == (
        "validate",
        {"posts": 2, "committee": "C7", "date": "2026-02-03"},
        "admin",
    )
    refuse = CommitteeAnswer(decision="refuser", motif="Enveloppe épuisée")
    assert committee.event(refuse) == ("refuse", {"reason": "Enveloppe épuisée"}, "admin")
    sign = ConventionAnswer.model_validate({"start": "2026-03-01", "acteur": "structure:4"})
    assert APPLICATION_WAITING["validated"].event(sign) == ("sign_convention", {"start": "2026-03-01"}, "structure:4")


def test_an_answer_goes_through_the_core_and_the_run_says_where_the_application_is(apps: Apps) -> None:
    app = apps.submit(posts=3, departement="86")
    apps.fire(app, "give_opinion", "2026-01-06T10:00", opinion="favourable")
    event, data, actor = APPLICATION_WAITING["prefet_reviewed"].event(
        CommitteeAnswer(decision="valider", postes=2, comite="COSELEC-12")
    )

    state = applications.validate_application(candidature=app, donnees=data, acteur=actor, return_state=True)

    assert event == "validate"
    assert state.is_completed(), state.message
    assert state.message == (
        f"Candidature n° {app} de Mairie (structure n° {state.result()['structure_id']}, département 86) — "
        "étape « Validée en comité de sélection », 3 poste(s) demandé(s), 2 validé(s)."
    )
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert {f"application:{app}", "departement:86"} <= set(run.tags)
    assert run.name == f"validate-application-candidature-{app}"
    view = state.result()
    assert view["history"][-1]["flow_run_id"] == str(run.id)
    assert view["committee"] == "COSELEC-12" and view["posts_validated"] == 2


def test_the_opinion_form_is_derived_from_the_event_model() -> None:
    schema = parameter_schema(applications.give_opinion).model_dump()
    assert list(schema["properties"]) == ["candidature", "donnees", "acteur"]
    form = schema["definitions"]["OpinionDataForm"]
    assert form["title"] == "Avis du préfet"
    assert form["properties"]["opinion"]["enum"] == ["favourable", "unfavourable"]


def test_validating_beyond_the_envelope_fails_with_one_french_line_and_changes_nothing(
    apps: Apps, conum_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("national_posts = 3\n", encoding="utf-8")
    monkeypatch.setenv("CONUM_POLICY_FILE", str(policy))
    apps.policy = Policy(national_posts=3)
    apps.validated(posts=2)
    app = apps.submit(posts=2)
    apps.fire(app, "give_opinion", "2026-01-06T10:00", opinion="favourable")

    state = applications.validate_application(
        candidature=app, donnees={"posts": 2, "committee": "C2"}, return_state=True
    )

    assert state.is_failed()
    assert state.message == (
        "Refusé (règle within_envelope) : les postes validés dépasseraient l'enveloppe (nationale, ou celle de la "
        "région) : validez moins de postes, ou refusez."
    )
    logs = _logs(state.state_details.flow_run_id)
    assert any("beyond the envelope of 3" in m for m in logs)
    assert not any("Traceback" in m for m in logs)
    with read_session(conum_env.engine) as s:
        row = s.get(Application, app)
        assert row is not None and row.state == "prefet_reviewed" and row.posts_validated == 0


def test_an_event_not_allowed_names_the_step_and_the_actions_allowed(apps: Apps) -> None:
    app = apps.submit(posts=2)

    state = applications.sign_convention(candidature=app, donnees={"start": "2026-02-01"}, return_state=True)

    assert state.is_failed()
    assert state.message == (
        "Refusé (règle lifecycle) : la candidature est à l'étape « Candidature déposée », d'où cette action n'est "
        "pas possible ; actions possibles : « Rendre l'avis du préfet », « Retirer la candidature »."
    )
