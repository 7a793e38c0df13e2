"""``advance-case``: one flow run per operator action on a case.

The run is named ``case-<id>-<event>`` and tagged with the case's département
(``departement:<code>``), so the UI finds every action on a case or in a
département. The history row of the transition records the flow-run id. After
the commit the run emits the Prefect event ``conum.case.<event>`` on the
resource ``conum.case.<id>``, related to the structure and the département;
the ``deliver-notifications`` deployment is triggered by these events.

A refusal (any rule of the programme, a permission, an unknown case) fails
the run with the rule's message in its logs and changes nothing; it is never
retried, since the same action would be refused again.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from prefect import flow, get_client, get_run_logger
from prefect.events import emit_event
from prefect.runtime import flow_run
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo
from sqlmodel import col, select

from flows.common import engine, instant, policy
from states import service
from states.db import read_session, write_session
from states.errors import ConumError, NotFound
from states.lifecycle import BY_NAME, OPERATOR_EVENTS
from states.models import Case, Structure
from states.views import case_view

#: The events an operator may fire, derived from the lifecycle table (the UI shows them as a drop-down).
CaseEvent = StrEnum("CaseEvent", [(name, name) for name in OPERATOR_EVENTS])  # type: ignore[misc]


def _any_event_data() -> type[BaseModel]:
    """Build the model of the ``data`` parameter: every field of every operator event, each optional.

    Derived from the events' own models (``states.eventdata``): same titles, help texts and drop-downs; the
    service then checks the fields against the model of the event actually fired.
    """
    first: dict[str, FieldInfo] = {}
    users: dict[str, list[str]] = {}
    for name in OPERATOR_EVENTS:
        for key, info in BY_NAME[name].data.model_fields.items():
            users.setdefault(key, []).append(name)
            first.setdefault(key, info)
    fields: dict[str, Any] = {}
    for key, info in first.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        choices = extra.get("enum")
        annotation: Any = Literal[tuple(choices)] if isinstance(choices, list) else info.annotation
        description = f"{info.description} ({', '.join(users[key])})"
        fields[key] = (annotation | None, Field(None, title=info.title, description=description))
    built: type[BaseModel] = create_model("EventData", __config__=ConfigDict(extra="forbid"), **fields)
    return built


EventData = _any_event_data()


def _to_data(data: BaseModel | None) -> dict[str, Any]:
    """Return the dict ``service.fire`` takes: only the fields given, amounts as text."""
    if data is None:
        return {}
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in data.model_dump(exclude_none=True).items()}


def _where(case_id: int) -> tuple[int, str]:
    """Return the structure and the département of a case, before anything changes."""
    with read_session(engine()) as session:
        row = session.exec(
            select(Structure.id, Structure.departement)
            .join(Case, col(Case.structure_id) == col(Structure.id))
            .where(Case.id == case_id)
        ).first()
    if row is None:
        raise NotFound(f"case {case_id} does not exist: `conum list` shows the cases")
    return row[0] or 0, row[1]


def _tag_run(*tags: str) -> None:
    """Add ``tags`` to the current flow run (they are known only once the case is read)."""
    run_id = flow_run.id
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(UUID(run_id), tags=sorted({*flow_run.tags, *tags}))


@flow(name="advance-case", flow_run_name="case-{case_id}-{event}", retries=0, persist_result=False)
def advance_case(
    case_id: int,
    event: CaseEvent,
    actor: str = "admin",
    data: EventData | None = None,  # type: ignore[valid-type]
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Fire an operator event on a case and return the case as ``conum show`` gives it.

    Args:
        case_id: The case (``conum list`` shows them).
        event: The event to fire; ``conum events <state>`` tells which are allowed from a state.
        actor: Who acts: admin, structure:<id>, candidate:<id> or prefet:<département>.
        data: The event's data: org, type, start, end, salary, reason or date, as the event needs.
        at: The instant of the action (default now; Europe/Paris when no offset is given).
    """
    logger = get_run_logger()
    name = CaseEvent(event).value
    run_id = flow_run.id
    try:
        structure_id, departement = _where(case_id)
        _tag_run(f"departement:{departement}")
        with write_session(engine()) as session:
            case = service.fire(
                session,
                case_id,
                name,
                actor=actor,
                at=instant(at),
                data=_to_data(data),
                policy=policy(),
                flow_run_id=run_id,
            )
            view = case_view(session, case)
    except ConumError as exc:
        logger.error("refused (rule: %s): %s", exc.rule, exc)
        raise
    step = view["history"][-1]
    emit_event(
        event=f"conum.case.{name}",
        resource={"prefect.resource.id": f"conum.case.{case_id}", "prefect.resource.name": f"case {case_id}"},
        related=[
            {"prefect.resource.id": f"conum.structure.{structure_id}", "prefect.resource.role": "structure"},
            {"prefect.resource.id": f"conum.departement.{departement}", "prefect.resource.role": "departement"},
        ],
        payload={"case_id": case_id, "from": step["from"], "to": step["to"], "actor": actor, "at": step["at"]},
    )
    logger.info("case %s: %s by %s, %s → %s", case_id, name, actor, step["from"], step["to"])
    return view
