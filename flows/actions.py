"""One deployment per operator action: a form with only that action's fields, in French.

Each action (select, decline, sign the contract, ...) is a flow of its own, built from the event's
data model (``states.eventdata``): the form asks for the case's number (``dossier``), the event's own
fields (``donnees``: French titles and help texts, required ones marked, contract types and rupture
reasons as drop-downs, dates as date pickers) and who acts (``acteur``). System events (reminders,
escalations, time-outs, payments) have no form, and nobody acts as ``system`` from a form: the core
refuses it.

Every run goes through ``act``, which the ``advance-case`` deployment (scripts, automations) and the
decision runs of the inbox share: it fires the event through the core, records the flow-run id in the
history, emits ``conum.case.<event>``, refreshes the case's page (artifact ``case-<id>``) and says what
the case is now. A refusal ends the run ``Failed`` with one French line naming the rule and what to do
(``states.refusals``), and no traceback: a refusal is an answer, not a crash.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable
from concurrent.futures import Future
from decimal import Decimal
from typing import Any, Literal, get_args
from uuid import UUID

from prefect import Flow, flow, get_client, get_run_logger
from prefect.context import FlowRunContext
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import SkipJsonSchema
from sqlmodel import col, select

from flows.common import artifact_key, engine, in_background, instant, markdown, policy
from states import service
from states.casepage import render, state_label, summary
from states.db import read_session, write_session
from states.errors import ConumError, NotFound
from states.eventdata import EventData
from states.lifecycle import BY_NAME, OPERATOR_EVENTS
from states.models import Case, Structure
from states.refusals import french
from states.views import case_page, case_view

#: How the form's actor field explains itself.
ACTOR_HELP = (
    "Qui agit : admin (ANCT), structure:<n°> (la structure du dossier), candidate:<n°> (son candidat) "
    "ou prefet:<département>. Personne n'agit en tant que system."
)
ACTOR_PATTERN = r"^(admin|system|structure:\d+|candidate:\d+|prefet:(\d[0-9AB]|\d{3}))$"
#: The form's amount fields: text (never a float), checked by the core.
AMOUNT_PATTERN = r"^\d{1,7}([.,]\d{1,2})?$"


# ---------------------------------------------------------------- the forms, from the events' models


def _form_type(annotation: Any, extra: dict[str, Any]) -> Any:
    """Return what a form field asks for: a date picker, a drop-down, a whole number or a text."""
    kinds = [getattr(t, "__origin__", t) for t in (annotation, *get_args(annotation))]
    if isinstance(extra.get("enum"), list):
        return Literal[tuple(extra["enum"])]
    if dt.date in kinds:
        return dt.date
    if int in kinds:
        return int
    return str


def no_null_default(schema: dict[str, Any]) -> None:
    """Leave an optional field's ``null`` default out of its JSON schema.

    The UI fills a form with the schema's defaults and checks them against the field's type: a ``null``
    default in a text or date field fails that check ("None is not of type 'string'"), so the form could not
    be sent without typing in it. Left out, the field starts empty and an empty field is not sent.
    """
    if schema.get("default", ...) is None:
        del schema["default"]


def form_model(data: type[EventData]) -> type[BaseModel] | None:
    """Build the form of an event's data from its model: same fields, French titles and help texts.

    Optional fields stay optional without a "null" choice in the form; amounts are asked as text (the core
    checks them, money is never a float). Return None for an event that takes no data.
    """
    if not data.model_fields:
        return None
    fields: dict[str, Any] = {}
    for name, info in data.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        kind = _form_type(info.annotation, extra)
        is_amount = any(getattr(t, "__origin__", t) is Decimal for t in (info.annotation, *get_args(info.annotation)))
        options: dict[str, Any] = {"title": info.title, "description": info.description}
        if is_amount:
            options.update(pattern=AMOUNT_PATTERN, examples=["1900.00"])
        if info.is_required():
            fields[name] = (kind, Field(..., **options))
        else:
            fields[name] = (
                kind | SkipJsonSchema[None],  # type: ignore[misc]
                Field(None, json_schema_extra=no_null_default, **options),
            )
    model: type[BaseModel] = create_model(
        f"{data.__name__}Form", __config__=ConfigDict(extra="forbid", title=data.title), **fields
    )
    return model


def as_data(data: BaseModel | dict[str, Any] | None) -> dict[str, Any]:
    """Return the dict ``service.fire`` takes: only the fields given, dates and amounts as text."""
    if data is None:
        return {}
    values = data.model_dump(exclude_none=True) if isinstance(data, BaseModel) else dict(data)
    return {
        k: v.isoformat() if isinstance(v, dt.date) else str(v) if isinstance(v, Decimal) else v
        for k, v in values.items()
        if v is not None
    }


# ---------------------------------------------------------------- one action, shared by every way to act


def where(case_id: int) -> tuple[int, str, str]:
    """Return the structure, the département and the state of a case."""
    with read_session(engine()) as session:
        row = session.exec(
            select(Structure.id, Structure.departement, Case.state)
            .join(Case, col(Case.structure_id) == col(Structure.id))
            .where(Case.id == case_id)
        ).first()
    if row is None:
        raise NotFound(f"case {case_id} does not exist: `conum list` shows the cases")
    return row[0] or 0, row[1], row[2]


def tag_run(*tags: str) -> None:
    """Add ``tags`` to the current flow run (they are known only once the case is read)."""
    run_id = flow_run.id
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(UUID(run_id), tags=sorted({*flow_run.tags, *tags}))


def creator(created_by: Any) -> str | None:
    """Return who created a flow run as the history records it (``type:name``), or None when the server does not say.

    A server that knows its users fills a run's ``created_by`` (a user of Prefect Cloud, an automation, a
    schedule); the runs an operator starts on Prefect's open-source server carry none.
    """
    if created_by is None:
        return None
    kind = (getattr(created_by, "type", None) or "unknown").lower()
    name = getattr(created_by, "display_value", None) or str(getattr(created_by, "id", None) or "")
    return f"{one_line(kind)}:{one_line(name)}"


def run_creator() -> str | None:
    """Return who created the current flow run (see ``creator``).

    The creator is read from the run the engine loaded when it started (no second call to the server).
    """
    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    return creator(run.created_by if run is not None else None)


def publish_page(case_id: int, view: dict[str, Any] | None = None) -> str:
    """Refresh the case's page (artifact ``case-<id>``); return its one-line French summary.

    ``view`` is the case as the action's transaction left it (``case_view``), when the caller has it.
    """
    with read_session(engine()) as session:
        page = case_page(session, case_id, view)
    markdown(artifact_key("case", case_id), render(page), f"Dossier n° {case_id} — {state_label(page['state'])}")
    return summary(page, plain=True)


def act(case_id: int, event: str, actor: str, data: dict[str, Any], at: dt.datetime | None = None) -> State:
    """Fire ``event`` on a case, refresh its page and return the run's final state.

    The history records the declared actor, the flow-run id and, where the server knows it, who created
    the run (``creator``).

    ``Completed`` with the case's summary as message and the case (as ``conum show`` gives it) as result,
    or ``Failed`` with one French line when refused; the core's own message, with its figures, follows
    in the logs.
    """
    logger = get_run_logger()
    state: str | None = None
    tagging: Future[None] | None = None
    try:
        structure_id, departement, state = where(case_id)
        # the run is tagged while the transition runs; it waits for it before it ends (below)
        tagging = in_background(tag_run, f"case:{case_id}", f"departement:{departement}")
        # the creator goes beside the declared actor, where the server knows who created the run
        created_by = run_creator()
        with write_session(engine()) as session:
            case = service.fire(
                session,
                case_id,
                event,
                actor=actor,
                at=instant(at),
                data=data,
                policy=policy(),
                flow_run_id=flow_run.id,
                created_by=created_by,
            )
            view = case_view(session, case)
    except ConumError as exc:
        line = french(exc, state=state)
        logger.error("%s", line)
        logger.info("détail : %s", one_line(str(exc)))
        return Failed(message=line)
    finally:
        if tagging is not None:
            tagging.result()  # a failure to tag fails the run, as it did inline
    step = view["history"][-1]
    emit_event(
        event=f"conum.case.{event}",
        resource={"prefect.resource.id": f"conum.case.{case_id}", "prefect.resource.name": f"case {case_id}"},
        related=[
            {"prefect.resource.id": f"conum.structure.{structure_id}", "prefect.resource.role": "structure"},
            {"prefect.resource.id": f"conum.departement.{departement}", "prefect.resource.role": "departement"},
        ],
        payload={"case_id": case_id, "from": step["from"], "to": step["to"], "actor": actor, "at": step["at"]},
    )
    line = publish_page(case_id, view)
    logger.info("%s : %s → %s. %s", BY_NAME[event].label, state_label(step["from"]), state_label(step["to"]), line)
    return Completed(message=line, data=view)


def one_line(text: str) -> str:
    """Return ``text`` on one line: control characters shown escaped (user text is data)."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


# ---------------------------------------------------------------- one flow per action

#: The deployment name of each action's flow.
FLOW_NAMES: dict[str, str] = {
    "select": "select-candidate",
    "decline": "decline-candidate",
    "withdraw": "withdraw-candidate",
    "contact_training_org": "contact-training-org",
    "sign_contract": "sign-contract",
    "start_training": "start-training",
    "complete_training": "complete-training",
    "break_contract": "break-contract",
    "cancel": "cancel-case",
}


def action_flow(
    event: str, ev: Any, name: str, fire: Callable[..., State], subject: tuple[str, str, str]
) -> Flow[..., Any]:
    """Build the flow of one action: its parameters are the row acted on, the event's form and the actor.

    ``ev`` is the event's row of its table (its ``data`` model and ``label``), ``fire`` the shared action
    (``act`` for a case), ``subject`` the row's parameter: its name, its help text and how the docstring
    names it ("un dossier").
    """
    key, help_text, noun = subject
    form = form_model(ev.data)
    params = [
        inspect.Parameter(
            key,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=int,
            default=Field(..., ge=1, description=help_text),
        )
    ]
    if form is not None:
        params.append(
            inspect.Parameter(
                "donnees",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=form,
                default=Field(
                    ... if ev.data.required() else {},
                    description=f"{ev.data.title} : les champs marqués « (Optional) » sont facultatifs, les autres "
                    "obligatoires.",
                ),
            )
        )
    params.append(
        inspect.Parameter(
            "acteur",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=str,
            default=Field("admin", pattern=ACTOR_PATTERN, description=ACTOR_HELP),
        )
    )
    signature = inspect.Signature(params, return_annotation=State)

    def run(*args: Any, **kwargs: Any) -> State:
        given = signature.bind_partial(*args, **kwargs).arguments
        return fire(given[key], event, given.get("acteur", "admin"), as_data(given.get("donnees")))

    run.__signature__ = signature  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params} | {"return": State}
    run.__name__ = run.__qualname__ = event
    run.__doc__ = f"{ev.label} : une action sur {noun}, enregistrée dans son historique."
    return flow(name=name, flow_run_name=f"{name}-{key}-{{{key}}}", retries=0, persist_result=False)(run)


def _action_flow(event: str) -> Flow[..., Any]:
    """Build the flow of one action on a case."""
    subject = ("dossier", "Numéro du dossier (sa page, case-<n°>, le donne).", "un dossier")
    return action_flow(event, BY_NAME[event], FLOW_NAMES[event], act, subject)


assert set(FLOW_NAMES) == set(OPERATOR_EVENTS), "every operator event has its form, and only they"

select_candidate = _action_flow("select")
decline_candidate = _action_flow("decline")
withdraw_candidate = _action_flow("withdraw")
contact_training_org = _action_flow("contact_training_org")
sign_contract = _action_flow("sign_contract")
start_training = _action_flow("start_training")
complete_training = _action_flow("complete_training")
break_contract = _action_flow("break_contract")
cancel_case = _action_flow("cancel")
