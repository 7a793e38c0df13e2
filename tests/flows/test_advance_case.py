"""advance-case: one flow run per operator action, recorded, tagged, announced; refusals change nothing."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.logging.handlers import APILogHandler
from prefect.utilities.callables import parameter_schema
from sqlalchemy import func
from sqlmodel import col, select

from flows.advance import EventData, _to_data, advance_case
from states.clock import parse_instant
from states.db import read_session
from states.models import Case, History, Outbox, Tranche


def _events(case_id: int, name: str, timeout: float = 15.0, run_id: str | None = None) -> list[Any]:
    """Read the events of a case back from the server (they are stored asynchronously).

    The server outlives each test's database, where case numbers start again at 1: ``run_id`` keeps the
    events that run emitted.
    """
    flt = EventFilter(event=EventNameFilter(name=[name]), resource=EventResourceFilter(id=[f"conum.case.{case_id}"]))
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            found = [
                e
                for e in client.read_events(filter=flt, limit=50).events
                if run_id is None or any(r.id == f"prefect.flow-run.{run_id}" for r in e.related)
            ]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


def _snapshot(conum_env: Any, case_id: int) -> dict[str, Any]:
    with read_session(conum_env.engine) as s:
        case = s.get(Case, case_id)
        assert case is not None
        return {
            "case": case.model_dump(),
            "history": s.exec(select(func.count(col(History.id)))).one(),
            "outbox": s.exec(select(func.count(col(Outbox.id)))).one(),
            "tranches": s.exec(select(func.count(col(Tranche.id)))).one(),
        }


def test_the_event_parameter_offers_no_payment_reminder_or_escalation() -> None:
    schema = parameter_schema(advance_case).model_dump()
    offered = set(schema["definitions"]["CaseEvent"]["enum"])
    assert offered.isdisjoint({"remind", "escalate", "pay_tranche", "pay_final_tranche"})
    assert offered >= {"select", "decline", "withdraw", "contact_training_org", "sign_contract", "cancel"}
    assert schema["required"] == ["case_id", "event"]


def test_the_data_form_has_french_titles_and_a_drop_down_of_contract_types() -> None:
    schema = parameter_schema(advance_case).model_dump()
    fields = schema["definitions"]["EventData"]["properties"]
    assert fields["salary"]["title"] == "Salaire brut mensuel (€)"
    assert fields["start"]["anyOf"][0]["format"] == "date"
    assert fields["type"]["anyOf"][0]["enum"] == ["CDI", "CDD", "PEC", "contrat_de_projet"]


def test_event_data_becomes_the_dict_the_service_takes() -> None:
    data = EventData.model_validate({"type": "CDD", "start": "2026-04-01", "salary": "1900.00", "reason": None})
    assert _to_data(data) == {"type": "CDD", "start": data.start, "salary": "1900.00"}
    with pytest.raises(ValueError, match="type"):
        EventData.model_validate({"type": "stage"})


def test_an_action_is_one_named_tagged_run_recorded_in_the_history_and_announced(world: Any, conum_env: Any) -> None:
    structure = world.structure(departement="86")
    case = world.present(structure, world.candidate(), at="2026-03-01T10:00")

    state = advance_case(
        case, "select", actor=f"structure:{structure}", at=parse_instant("2026-03-03T09:00"), return_state=True
    )

    assert state.is_completed()
    view = state.result()
    run_id = str(state.state_details.flow_run_id)
    assert view["state"] == "selected"
    with read_session(conum_env.engine) as s:
        last = s.exec(select(History).where(History.case_id == case).order_by(col(History.id).desc())).first()
    assert last is not None and (last.event, last.actor, last.flow_run_id) == (
        "select",
        f"structure:{structure}",
        run_id,
    )
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
    assert run.name == f"case-{case}-select"
    assert {"departement:86", f"case:{case}"} <= set(run.tags)
    events = _events(case, "conum.case.select", run_id=run_id)
    assert len(events) == 1
    event = events[0]
    assert event.payload == {
        "case_id": case,
        "from": "candidate_presented",
        "to": "selected",
        "actor": f"structure:{structure}",
        "at": view["history"][-1]["at"],
    }
    related = {r.id: r.role for r in event.related}
    assert related[f"conum.structure.{structure}"] == "structure"
    assert related["conum.departement.86"] == "departement"
    assert related[f"prefect.flow-run.{run_id}"] == "flow-run"


def test_event_data_reaches_the_rules_through_the_flow(world: Any, conum_env: Any) -> None:
    case = world.present(world.structure(), world.candidate(), at="2026-03-01T10:00")
    world.fire(case, "select", "2026-03-02T10:00")
    world.fire(case, "contact_training_org", "2026-03-03T10:00", org=str(world.org))
    data = EventData.model_validate({"type": "CDD", "start": "2026-04-01", "end": "2028-03-31", "salary": "1900.00"})

    view = advance_case(case, "sign_contract", data=data, at=parse_instant("2026-03-04T10:00"))

    assert view["state"] == "contract_signed"
    assert view["contract"]["salary_cents"] == 190000
    assert [t["amount_cents"] for t in view["tranches"]] == [2000000, 1500000, 1500000]


def test_a_refused_action_fails_its_run_once_with_the_rule_in_the_logs_and_changes_nothing(
    world: Any, conum_env: Any
) -> None:
    case = world.present(world.structure(), world.candidate(), at="2026-03-01T10:00")
    world.fire(case, "select", "2026-03-02T10:00")
    world.fire(case, "contact_training_org", "2026-03-03T10:00", org=str(world.org))
    before = _snapshot(conum_env, case)
    data = EventData.model_validate({"type": "CDI", "start": "2026-04-01", "salary": "1200.00"})

    state = advance_case(case, "sign_contract", data=data, at=parse_instant("2026-03-04T10:00"), return_state=True)

    assert state.is_failed()
    assert state.message == (
        "Refusé (règle salary_at_least_smic) : le salaire est inférieur au SMIC en vigueur au début du contrat : "
        "proposez au moins le SMIC."
    )
    assert _snapshot(conum_env, case) == before
    APILogHandler().flush()  # the run's logs reach the server in batches: send them now
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    assert run.run_count == 1  # a refusal is never retried
    assert [log.message for log in logs if log.message.startswith("Refusé")] == [state.message]
    assert any("offer at least the SMIC" in log.message for log in logs)  # the core's figures, as detail
    assert not any("Traceback" in log.message for log in logs)


def test_an_illegal_event_names_the_events_allowed_and_changes_nothing(world: Any, conum_env: Any) -> None:
    case = world.present(world.structure(), world.candidate(), at="2026-03-01T10:00")
    before = _snapshot(conum_env, case)

    state = advance_case(case, "complete_training", at=parse_instant("2026-03-02T10:00"), return_state=True)

    assert state.is_failed()
    assert "actions possibles : « Retenir le candidat », « Décliner »" in (state.message or "")
    assert _snapshot(conum_env, case) == before
