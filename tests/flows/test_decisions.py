"""The inbox: one suspended decision run per waiting case, opened once, closed when no longer waited for."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.states import Suspended

from flows.decisions import (
    WAITING,
    ContractAnswer,
    SelectionAnswer,
    _decision_runs,
    decide_case,
    follow_cases,
)


@pytest.fixture(scope="module", autouse=True)
def decide_case_deployment(prefect_harness: None) -> Iterator[None]:
    with get_client(sync_client=True) as client, contextlib.suppress(Exception):
        client.create_work_pool(WorkPoolCreate(name="conum-test", type="process"))
    decide_case.to_deployment(name="decide-case", work_pool_name="conum-test").apply()
    yield


def _open_runs() -> list[Any]:
    with get_client(sync_client=True) as client:
        return [r for r in _decision_runs(client, []) if r.state and not r.state.is_final()]


def test_each_waiting_case_gets_one_named_tagged_decision_and_only_one(world: Any, conum_env: Any) -> None:
    structure = world.structure(departement="86")
    presented = world.present(structure, world.candidate(), at="2026-03-01T10:00")
    selected = world.present(structure, world.candidate(), at="2026-03-01T10:00")
    world.fire(selected, "select", "2026-03-02T10:00")  # waits on nobody: no decision
    before = {r.id for r in _open_runs()}

    first = follow_cases()
    second = follow_cases()

    runs = [r for r in _open_runs() if r.id not in before]
    assert first["opened"] == 1 and second["opened"] == 0
    assert len(runs) == 1
    run = runs[0]
    assert {f"case:{presented}", "departement:86", "decision"} <= set(run.tags)
    assert run.name == f"Décision dossier {presented} : retenir ou décliner le candidat (Médiathèque, 86)"
    assert run.parameters == {"dossier": presented}


def test_a_suspended_decision_whose_case_moved_on_is_closed_saying_why(world: Any, conum_env: Any) -> None:
    case = world.present(world.structure(), world.candidate(), at="2026-03-01T10:00")
    follow_cases()
    run = next(r for r in _open_runs() if f"case:{case}" in r.tags)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Suspended(timeout_seconds=3600), force=True)
    world.fire(case, "select", "2026-03-02T10:00")  # through another channel

    figures = follow_cases()

    with get_client(sync_client=True) as client:
        closed = client.read_flow_run(run.id)
    assert figures["closed"] >= 1
    assert closed.state is not None and closed.state.is_completed()
    assert closed.state.message == (
        f"Plus de décision à prendre : le dossier n° {case} est maintenant à l'étape « Candidat retenu »."
    )


def test_a_decision_run_started_after_its_case_moved_on_ends_without_acting(world: Any, conum_env: Any) -> None:
    case = world.present(world.structure(), world.candidate(), at="2026-03-01T10:00")
    world.fire(case, "decline", "2026-03-02T10:00", reason="Poste pourvu")

    state = decide_case(dossier=case, return_state=True)

    assert state.is_completed()
    assert "« Candidature déclinée »" in (state.message or "")


def test_each_answer_fires_its_event() -> None:
    presented, contacted = WAITING["candidate_presented"], WAITING["training_org_contacted"]
    assert presented.event(SelectionAnswer(decision="retenir", acteur="structure:3")) == ("select", {}, "structure:3")
    assert presented.event(SelectionAnswer(decision="décliner", motif="Trop loin")) == (
        "decline",
        {"reason": "Trop loin"},
        "admin",
    )
    answer = ContractAnswer.model_validate({"type": "CDI", "start": "2026-05-04", "salary": "1900,00"})
    assert contacted.event(answer) == (
        "sign_contract",
        {"type": "CDI", "start": "2026-05-04", "salary": "1900,00"},
        "admin",
    )


def test_a_change_made_elsewhere_refreshes_the_case_page(world: Any, conum_env: Any) -> None:
    case = world.present(world.structure(), world.candidate(), at="2026-03-01T10:00")
    world.fire(case, "cancel", "2026-03-02T10:00", reason="Doublon")

    figures = follow_cases()

    assert figures["pages"] >= 1
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"case-{case}"])))
    latest = str(max(found, key=lambda a: a.created).data)
    assert latest.startswith(f"# Dossier n° {case} — Dossier annulé")


def test_each_decision_pauses_under_a_key_prefect_accepts() -> None:
    # Prefect refuses a run input key with anything but lowercase letters, digits and dashes: the resume
    # form would not show
    import re

    from flows.decisions import pause_key

    assert {pause_key(state) for state in WAITING} == {
        "decision-candidate-presented",
        "decision-training-org-contacted",
    }
    assert all(re.fullmatch(r"[a-z0-9-]+", pause_key(state)) for state in WAITING)


def test_two_follow_cases_at_once_open_one_decision_and_a_duplicate_is_closed(world: Any, conum_env: Any) -> None:
    from flows.decisions import _waiting_cases, open_decisions

    case = world.present(world.structure(), world.candidate(), at="2026-03-01T10:00")
    waiting = {k: v for k, v in _waiting_cases().items() if k == case}
    with get_client(sync_client=True) as client:
        # both saw no open run before either created one: the server keeps one run for both
        first = client.create_flow_run_from_deployment
        created: list[Any] = []

        def create(*args: Any, **kwargs: Any) -> Any:
            created.append(first(*args, **kwargs))
            return created[-1]

        client.create_flow_run_from_deployment = create  # type: ignore[method-assign]
        import flows.decisions as decisions

        seen = decisions._decision_runs
        decisions._decision_runs = lambda c, tags, types=None, *rest: (
            [] if types is not None and not tags else seen(c, tags, types, *rest)
        )
        try:
            open_decisions(client, waiting)
            open_decisions(client, waiting)
        finally:
            decisions._decision_runs = seen
    assert len({r.id for r in created}) == 1

    # a duplicate left by an older version is closed, saying so
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("decide-case/decide-case")
        tags = ["decision", f"case:{case}", "etape:candidate_presented", "departement:33"]
        extra = client.create_flow_run_from_deployment(deployment.id, parameters={"dossier": case}, tags=tags)
        for run_id in (created[0].id, extra.id):
            client.set_flow_run_state(run_id, Suspended(timeout_seconds=3600), force=True)
    figures = follow_cases()
    with get_client(sync_client=True) as client:
        states = [client.read_flow_run(r).state for r in (created[0].id, extra.id)]
    assert figures["closed"] >= 1
    assert sorted(s.type.value for s in states if s) == ["COMPLETED", "PAUSED"]
    closed = next(s for s in states if s and s.is_completed())
    assert (
        closed.message == f"Décision en double : une autre run attend déjà la même décision sur le dossier n° {case}."
    )
