"""A structure's application in the Prefect UI: one action shared by every way to act, one form per event.

``act_application`` is to an application what ``flows.actions.act`` is to a case: it fires the event
through the core (``states.applications.service``), records the flow-run id in the application's history,
tags the run ``application:<id>`` and ``departement:<code>``, emits ``conum.application.<event>`` (the
delivery of the notifications is triggered by it) and says, in French, where the application now is. A
refusal ends the run ``Failed`` with one French line naming the rule and what to do, and no traceback.

The operator forms (``give-opinion``, ``validate-application``, ...) are built from the events' models by
the same code as the cases' forms; the inbox (``flows.decisions``) opens a suspended decision run for
each application waiting on the préfet, the committee or the structure.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import get_run_logger
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from sqlmodel import col, select

from flows.actions import action_flow, one_line, tag_run
from flows.common import engine, instant, policy
from states.applications import service
from states.applications.models import Application
from states.applications.table import BY_NAME, LABELS, OPERATOR_EVENTS, AppState
from states.applications.views import application_view
from states.casepage import text
from states.db import read_session, write_session
from states.errors import ConumError, NotFound
from states.refusals import french


def step_label(state: str) -> str:
    """Return the French label of an application's state."""
    return LABELS[AppState(state)]


def where_application(app_id: int) -> tuple[int, str, str]:
    """Return the structure, the département and the state of an application."""
    with read_session(engine()) as session:
        row = session.exec(
            select(Application.structure_id, Application.departement, Application.state).where(
                col(Application.id) == app_id
            )
        ).first()
    if row is None:
        raise NotFound(f"application {app_id} does not exist: `conum application list` shows the applications")
    return row[0], row[1], row[2]


def application_line(view: dict[str, Any]) -> str:
    """Return one French sentence that says where an application is: its structure, step and posts."""
    posts = f"{view['posts_requested']} poste(s) demandé(s)"
    if view["posts_validated"]:
        posts += f", {view['posts_validated']} validé(s)"
    return (
        f"Candidature n° {view['id']} de {text(view['name'])} (structure n° {view['structure_id']}, "
        f"département {text(view['departement'])}) — étape « {step_label(view['state'])} », {posts}."
    )


def act_application(app_id: int, event: str, actor: str, data: dict[str, Any], at: dt.datetime | None = None) -> State:
    """Fire ``event`` on an application and return the run's final state.

    ``Completed`` with the application's summary as message and the application (as ``conum application
    show`` gives it) as result, or ``Failed`` with one French line when refused; the core's own message,
    with its figures, follows in the logs.
    """
    logger = get_run_logger()
    state: str | None = None
    try:
        structure_id, departement, state = where_application(app_id)
        tag_run(f"application:{app_id}", f"departement:{departement}")
        with write_session(engine()) as session:
            app = service.fire(
                session,
                app_id,
                event,
                actor=actor,
                at=instant(at),
                data=data,
                policy=policy(),
                flow_run_id=flow_run.id,
            )
            view = application_view(session, *service.load(session, app.id or 0))
    except ConumError as exc:
        line = french(exc, state=state, subject="application")
        logger.error("%s", line)
        logger.info("détail : %s", one_line(str(exc)))
        return Failed(message=line)
    step = view["history"][-1]
    emit_event(
        event=f"conum.application.{event}",
        resource={
            "prefect.resource.id": f"conum.application.{app_id}",
            "prefect.resource.name": f"application {app_id}",
        },
        related=[
            {"prefect.resource.id": f"conum.structure.{structure_id}", "prefect.resource.role": "structure"},
            {"prefect.resource.id": f"conum.departement.{departement}", "prefect.resource.role": "departement"},
        ],
        payload={"application_id": app_id, "from": step["from"], "to": step["to"], "actor": actor, "at": step["at"]},
    )
    line = application_line(view)
    logger.info("%s : %s → %s. %s", BY_NAME[event].label, step_label(step["from"]), step_label(step["to"]), line)
    return Completed(message=line, data=view)


# ---------------------------------------------------------------- one flow per action

#: The deployment name of each action's flow.
FLOW_NAMES: dict[str, str] = {
    "give_opinion": "give-opinion",
    "validate": "validate-application",
    "refuse": "refuse-application",
    "sign_convention": "sign-convention",
    "request_change": "request-posts-change",
    "withdraw": "withdraw-application",
    "close": "close-application",
}
assert set(FLOW_NAMES) == set(OPERATOR_EVENTS), "every operator event of an application has its form, and only they"

_SUBJECT = ("candidature", "Numéro de la candidature (`conum application list` le donne).", "une candidature")


def _action(event: str) -> Any:
    return action_flow(event, BY_NAME[event], FLOW_NAMES[event], act_application, _SUBJECT)


give_opinion = _action("give_opinion")
validate_application = _action("validate")
refuse_application = _action("refuse")
sign_convention = _action("sign_convention")
request_posts_change = _action("request_change")
withdraw_application = _action("withdraw")
close_application = _action("close")
