"""``advance-case``: one flow run per operator action on a case.

The run is named ``case-<id>-<event>`` and tagged with the case
(``case:<id>``) and its département (``departement:<code>``), so the UI finds every action on a case or in a
département. The history row of the transition records the flow-run id. After
the commit the run emits the Prefect event ``conum.case.<event>`` on the
resource ``conum.case.<id>``, related to the structure and the département;
the ``deliver-notifications`` deployment is triggered by these events.

A refusal (any rule of the programme, a permission, an unknown case) fails
the run with one French line naming the rule and what to do (no traceback: a
refusal is an answer), changes nothing, and is never retried. The action forms
of ``flows.actions`` run the same code, one deployment per action.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from prefect import flow
from prefect.states import State
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

from flows.actions import act
from states.lifecycle import BY_NAME, OPERATOR_EVENTS

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


@flow(name="advance-case", flow_run_name="case-{case_id}-{event}", retries=0, persist_result=False)
def advance_case(
    case_id: int,
    event: CaseEvent,
    actor: str = "admin",
    data: EventData | None = None,  # type: ignore[valid-type]
    at: dt.datetime | None = None,
) -> State:
    """Fire an operator event on a case; its result is the case as ``conum show`` gives it.

    Args:
        case_id: The case (``conum list`` shows them).
        event: The event to fire; ``conum events <state>`` tells which are allowed from a state.
        actor: Who acts: admin, structure:<id>, candidate:<id> or prefet:<département>.
        data: The event's data: org, type, start, end, salary, reason or date, as the event needs.
        at: The instant of the action (default now; Europe/Paris when no offset is given).
    """
    return act(case_id, CaseEvent(event).value, actor, _to_data(data), at)
