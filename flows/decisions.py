"""The inbox: one suspended flow run per case or application waiting on a person's decision; pages kept fresh.

A case waits on a person in two steps: a presented candidate (the structure selects or declines) and a
contacted training organisation (the structure signs the contract). A structure's application waits on
the préfet's opinion (``submitted``, ``change_requested``), on the selection committee's decision
(``prefet_reviewed``, ``change_reviewed``), then on the structure's convention (``validated``). For each
such row, ``follow-cases`` opens one decision run (``decide-case`` or ``decide-application``), named in
French and tagged ``decision``, ``case:<id>`` or ``application:<id>``, and ``departement:<code>``: the run
suspends itself (``suspend_flow_run`` with ``wait_for_input``), so no process waits, and the UI's run list
filtered on "Suspended" and a département is that préfecture's inbox. Resuming it shows the decision's
form; the answer fires the event through the core (``act``, ``act_application``), and a refusal ends that
run ``Failed`` with its French line (the next ``follow-cases`` opens a new decision). Both kinds are one
``Inbox`` each: the same code finds, opens, closes and answers their runs.

The database stays the truth: a decision run holds nothing of its own. Resumed, a suspended run restarts
from the top: it reads the row again, and if the row has left the step meanwhile (deadline, another
channel) it ends ``Completed`` saying why, without acting. ``follow-cases`` also closes, with the same
message, the suspended runs whose case left its step, and never opens two runs for one case and step
(the open ones are found by their tags; a run's idempotency key guards against two ``follow-cases`` at once).

Last, ``follow-cases`` refreshes the page (artifact ``case-<id>``) of every case whose history grew since
its previous run (the sweep, the payment run, ``conum``...): the last history row it saw, and a digest
of the database it saw it in, are kept in the Prefect variable ``conum_case_pages_watermark``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from prefect import flow, get_client, get_run_logger
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.states import Completed, State
from prefect.variables import Variable
from pydantic import ConfigDict, Field, create_model
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import func
from sqlmodel import col, select

from flows.actions import ACTOR_HELP, ACTOR_PATTERN, act, as_data, form_model, no_null_default, publish_page, where
from flows.applications import act_application, step_label, where_application
from flows.common import engine, settings
from states.applications.data import ConventionData
from states.applications.models import Application
from states.applications.table import AppState
from states.audit import digest
from states.casepage import state_label
from states.db import read_session
from states.errors import ConumError
from states.eventdata import ContractData, EventData
from states.lifecycle import State as CaseState
from states.models import Case, History, Structure
from states.refusals import french

DEPLOYMENT = "decide-case/decide-case"
WATERMARK = "conum_case_pages_watermark"
#: A decision waits this long at most (then its run fails, and ``follow-cases`` opens another one).
SUSPEND_SECONDS = 90 * 24 * 3600
OPEN_TYPES = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED]
ENDED_TYPES = [StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED]
DUPLICATE = "Décision en double : une autre run attend déjà la même décision sur {what} n° {row_id}."


class SelectionAnswer(RunInput):
    """Réponse de la structure au sujet du candidat présenté."""

    model_config = ConfigDict(title="Retenir ou décliner le candidat présenté")

    decision: Literal["retenir", "décliner"] = Field(
        title="Décision", description="Retenir le candidat, ou le décliner (le motif est alors obligatoire)."
    )
    motif: str | SkipJsonSchema[None] = Field(
        None,
        title="Motif (si décliné)",
        description="Pourquoi la structure ne retient pas ce candidat.",
        json_schema_extra=no_null_default,
    )
    acteur: str = Field("admin", title="Qui agit", description=ACTOR_HELP, pattern=ACTOR_PATTERN)


def form_answer(data: type[EventData], name: str) -> type[RunInput]:
    """The form of an event's model (``form_model``) and who acts, as the answer a decision run waits for."""
    form = form_model(data)
    assert form is not None
    fields: dict[str, Any] = {key: (info.annotation, info) for key, info in form.model_fields.items()}
    fields["acteur"] = (str, Field("admin", title="Qui agit", description=ACTOR_HELP, pattern=ACTOR_PATTERN))
    base: type[RunInput] = type(
        f"_{name}Base", (RunInput,), {"__doc__": data.title, "model_config": ConfigDict(title=data.title)}
    )
    model: type[RunInput] = create_model(name, __base__=base, **fields)
    return model


ContractAnswer = form_answer(ContractData, "ContractAnswer")


class OpinionAnswer(RunInput):
    """L'avis du préfet sur la candidature (ou sur la demande de modification des postes)."""

    model_config = ConfigDict(title="Rendre l'avis du préfet")

    avis: Literal["favorable", "défavorable"] = Field(title="Avis", description="L'avis du préfet du département.")
    commentaire: str | SkipJsonSchema[None] = Field(
        None, title="Commentaire", description="Le motif de l'avis (facultatif)."
    )
    acteur: str = Field("admin", title="Qui agit", description=ACTOR_HELP, pattern=ACTOR_PATTERN)


class CommitteeAnswer(RunInput):
    """La décision du comité de sélection (COSELEC) sur la candidature ou la demande de modification."""

    model_config = ConfigDict(title="Décision du comité de sélection")

    decision: Literal["valider", "refuser"] = Field(
        title="Décision",
        description="Valider des postes (nombre et comité obligatoires), ou refuser (motif obligatoire).",
    )
    postes: int | SkipJsonSchema[None] = Field(
        None, title="Postes validés", description="Au plus le nombre de postes demandés (si validé)."
    )
    comite: str | SkipJsonSchema[None] = Field(
        None, title="Numéro du comité", description="Le numéro du comité de sélection (COSELEC)."
    )
    date: dt.date | SkipJsonSchema[None] = Field(
        None, title="Date du comité", description="Le jour du comité (par défaut, celui de l'action)."
    )
    motif: str | SkipJsonSchema[None] = Field(None, title="Motif (si refusé)", description="Pourquoi le comité refuse.")
    acteur: str = Field("admin", title="Qui agit", description=ACTOR_HELP, pattern=ACTOR_PATTERN)


ConventionAnswer = form_answer(ConventionData, "ConventionAnswer")


def _given(**values: Any) -> dict[str, Any]:
    return as_data({k: v for k, v in values.items() if v is not None})


def _selection(answer: Any) -> tuple[str, dict[str, Any]]:
    if answer.decision == "retenir":
        return "select", {}
    return "decline", {"reason": answer.motif or ""}


def _opinion(answer: Any) -> tuple[str, dict[str, Any]]:
    opinion = "favourable" if answer.avis == "favorable" else "unfavourable"
    return "give_opinion", _given(opinion=opinion, comment=answer.commentaire)


def _committee(answer: Any) -> tuple[str, dict[str, Any]]:
    if answer.decision == "valider":
        return "validate", _given(posts=answer.postes, committee=answer.comite, date=answer.date)
    return "refuse", _given(reason=answer.motif, committee=answer.comite)


def _form(event: str) -> Callable[[Any], tuple[str, dict[str, Any]]]:
    return lambda answer: (
        event,
        as_data({k: v for k, v in answer.model_dump(exclude={"acteur"}).items() if v is not None}),
    )


@dataclass(frozen=True)
class Waiting:
    """A step where a row waits on a person: what the decision run is called, asks for and fires."""

    verb: str
    answer: type[RunInput]
    fires: Callable[[Any], tuple[str, dict[str, Any]]]

    def event(self, answer: Any) -> tuple[str, dict[str, Any], str]:
        """Return the event, its data and the actor an answer fires."""
        event, data = self.fires(answer)
        return event, data, answer.acteur


WAITING: dict[str, Waiting] = {
    CaseState.CANDIDATE_PRESENTED.value: Waiting("retenir ou décliner le candidat", SelectionAnswer, _selection),
    CaseState.TRAINING_ORG_CONTACTED.value: Waiting("signer le contrat", ContractAnswer, _form("sign_contract")),
}
_OPINION = Waiting("avis du préfet", OpinionAnswer, _opinion)
_COMMITTEE = Waiting("décision du comité de sélection", CommitteeAnswer, _committee)
#: The steps where an application waits on a person: the préfet, the committee, then the structure.
APPLICATION_WAITING: dict[str, Waiting] = {
    AppState.SUBMITTED.value: _OPINION,
    AppState.CHANGE_REQUESTED.value: _OPINION,
    AppState.PREFET_REVIEWED.value: _COMMITTEE,
    AppState.CHANGE_REVIEWED.value: _COMMITTEE,
    AppState.VALIDATED.value: Waiting("signer la convention", ConventionAnswer, _form("sign_convention")),
}


def left_step(case_id: int, state: str) -> str:
    """Say, in French, why a decision is no longer waited for."""
    return f"Plus de décision à prendre : le dossier n° {case_id} est maintenant à l'étape « {state_label(state)} »."


def application_left_step(app_id: int, state: str) -> str:
    """Say, in French, why a decision on an application is no longer waited for."""
    return f"Plus de décision à prendre : la candidature n° {app_id} est maintenant à l'étape « {step_label(state)} »."


def pause_key(state: str) -> str:
    """Return the key of a decision's pause: Prefect takes only lowercase letters, digits and dashes."""
    return "decision-" + state.replace("_", "-")


def _waiting_cases() -> dict[int, tuple[str, str, str]]:
    """Return the cases waiting on a person: state, département, structure name."""
    with read_session(engine()) as session:
        rows = session.exec(
            select(Case.id, Case.state, Structure.departement, Structure.name)
            .join(Structure, col(Structure.id) == col(Case.structure_id))
            .where(col(Case.state).in_(list(WAITING)))
        ).all()
    return {row[0] or 0: (row[1], row[2], row[3]) for row in rows}


def _waiting_applications() -> dict[int, tuple[str, str, str]]:
    """Return the applications waiting on a person: state, département, structure name."""
    with read_session(engine()) as session:
        rows = session.exec(
            select(Application.id, Application.state, Application.departement, Structure.name)
            .join(Structure, col(Structure.id) == col(Application.structure_id))
            .where(col(Application.state).in_(list(APPLICATION_WAITING)))
        ).all()
    return {row[0] or 0: (row[1], row[2], row[3]) for row in rows}


@dataclass(frozen=True)
class Inbox:
    """One kind of row that waits on people, and how its decision runs are found, named, opened and answered."""

    kind: str  # the tag's prefix: case:<id>, application:<id>
    flow: str  # the decision flow's name, and its deployment's
    parameter: str  # the decision flow's one parameter
    noun: str  # how a run's name starts: "Décision dossier 12", "Candidature 12"
    steps: dict[str, Waiting]
    waiting: Callable[[], dict[int, tuple[str, str, str]]]
    state_of: Callable[[int], str]  # raises ConumError when the row is gone
    left_step: Callable[[int, str], str]
    act: Callable[[int, str, str, dict[str, Any]], State]

    @property
    def deployment(self) -> str:
        return f"{self.flow}/{self.flow}"

    def run_name(self, row_id: int, state: str, departement: str, structure: str) -> str:
        short = " ".join(structure.split())[:60]
        return f"{self.noun} {row_id} : {self.steps[state].verb} ({short}, {departement})"

    def duplicate(self, row_id: int) -> str:
        what = "le dossier" if self.kind == "case" else "la candidature"
        return DUPLICATE.format(what=what, row_id=row_id)

    def why_closed(self, row_id: int, state: str | None) -> str:
        if state is None:
            try:
                state = self.state_of(row_id)
            except ConumError as exc:
                return french(exc)
        return self.left_step(row_id, state)

    def decide(self, row_id: int) -> State:
        """Wait (suspended, no process) for the decision the row waits on, then act on it.

        Resumed, the run starts again from the top: the row is read anew, and if it has left the step
        meanwhile the run ends ``Completed`` saying why, without acting.
        """
        try:
            state = self.state_of(row_id)
        except ConumError as exc:
            return Completed(message=french(exc))
        waiting = self.steps.get(state)
        if waiting is None:
            get_run_logger().info("%s", self.left_step(row_id, state))
            return Completed(message=self.left_step(row_id, state))
        answer = suspend_flow_run(wait_for_input=waiting.answer, timeout=SUSPEND_SECONDS, key=pause_key(state))
        event, data, actor = waiting.event(answer)
        return self.act(row_id, event, actor, data)


CASES = Inbox(
    "case",
    "decide-case",
    "dossier",
    "Décision dossier",
    WAITING,
    _waiting_cases,
    lambda row: where(row)[2],
    left_step,
    act,
)
APPLICATIONS = Inbox(
    "application",
    "decide-application",
    "candidature",
    "Candidature",
    APPLICATION_WAITING,
    _waiting_applications,
    lambda row: where_application(row)[2],
    application_left_step,
    act_application,
)


@flow(name="decide-case", retries=0, persist_result=False)
def decide_case(dossier: int) -> State:
    """Wait (suspended, no process) for the decision a case waits on, then act on it.

    Args:
        dossier: Numéro du dossier qui attend une décision.
    """
    return CASES.decide(dossier)


@flow(name="decide-application", retries=0, persist_result=False)
def decide_application(candidature: int) -> State:
    """Wait (suspended, no process) for the opinion, decision or convention an application waits on, then act.

    Args:
        candidature: Numéro de la candidature qui attend un avis, une décision ou sa convention.
    """
    return APPLICATIONS.decide(candidature)


# ---------------------------------------------------------------- follow-cases


def _decision_runs(
    client: Any, tags: list[str], types: list[StateType] | None = None, flow_name: str = "decide-case"
) -> list[FlowRun]:
    runs: list[FlowRun] = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=["decision", *tags]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=types)) if types else None,
        ),
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[flow_name])),
        limit=200 if tags else None,
    )
    return runs


def _tag_value(run: FlowRun, prefix: str) -> str | None:
    return next((t.removeprefix(prefix) for t in run.tags if t.startswith(prefix)), None)


def open_decisions(client: Any, waiting: dict[int, tuple[str, str, str]], inbox: Inbox = CASES) -> tuple[int, int]:
    """Open a decision run for each waiting row that has none; close those no longer waited for."""
    opened = closed = 0
    covered: set[int] = set()
    for run in _decision_runs(client, [], OPEN_TYPES, inbox.flow):
        row_id = int(_tag_value(run, f"{inbox.kind}:") or 0)
        step = _tag_value(run, "etape:")
        now_state = waiting.get(row_id, (None,))[0]
        paused = run.state is not None and run.state.type == StateType.PAUSED
        if now_state is not None and now_state == step and row_id not in covered:
            covered.add(row_id)
        elif paused:
            why = inbox.duplicate(row_id) if row_id in covered else inbox.why_closed(row_id, now_state)
            client.set_flow_run_state(run.id, Completed(message=why), force=True)
            closed += 1
    deployment = client.read_deployment_by_name(inbox.deployment) if set(waiting) - covered else None
    for row_id, (state, departement, structure) in sorted(waiting.items()):
        if row_id in covered or deployment is None:
            continue
        tags = [f"{inbox.kind}:{row_id}", f"etape:{state}"]
        # the key names the decision and how many of its runs have ended (a refused answer opens another):
        # two follow-cases at once count the same, and the server keeps one run for both
        before = len(_decision_runs(client, tags, ENDED_TYPES, inbox.flow))
        client.create_flow_run_from_deployment(
            deployment.id,
            parameters={inbox.parameter: row_id},
            name=inbox.run_name(row_id, state, departement, structure),
            tags=["decision", *tags, f"departement:{departement}"],
            idempotency_key=f"decision-{row_id}-{state}-{before}",
        )
        opened += 1
    return opened, closed


def refresh_pages(limit: int) -> int:
    """Refresh the page of every case whose history grew since the last run (at most ``limit`` cases)."""
    database = digest(settings().database_url)
    saved = Variable.get(WATERMARK, default=None)
    mark = int(saved["last"]) if isinstance(saved, dict) and saved.get("database") == database else 0
    with read_session(engine()) as session:
        top = session.exec(select(func.max(History.id))).one() or 0
        rows = session.exec(
            select(History.case_id, func.max(History.id))
            .where(col(History.id) > mark)
            .group_by(col(History.case_id))
            .order_by(func.max(History.id))
            .limit(limit)
        ).all()
    for case_id, _ in rows:
        publish_page(case_id)
    new_mark = rows[-1][1] if len(rows) == limit else top
    Variable.set(WATERMARK, {"database": database, "last": int(new_mark or 0)}, overwrite=True)
    return len(rows)


@flow(name="follow-cases", retries=0, persist_result=False)
def follow_cases(limit: int = 500) -> dict[str, int]:
    """Open the decisions waiting on a person (cases, applications), close those no longer waited for, refresh pages.

    Args:
        limit: Pages refreshed at most per run (the next run goes on).
    """
    figures = {"waiting": 0, "opened": 0, "closed": 0}
    with get_client(sync_client=True) as client:
        for inbox in (CASES, APPLICATIONS):
            waiting = inbox.waiting()
            opened, closed = open_decisions(client, waiting, inbox)
            figures["waiting"] += len(waiting)
            figures["opened"] += opened
            figures["closed"] += closed
            figures[f"{inbox.kind}s_waiting"] = len(waiting)
    figures["pages"] = refresh_pages(limit)
    get_run_logger().info(
        "%d dossier(s) et %d candidature(s) en attente d'une décision, %d décision(s) ouverte(s), %d close(s), "
        "%d page(s) mise(s) à jour",
        figures["cases_waiting"],
        figures["applications_waiting"],
        figures["opened"],
        figures["closed"],
        figures["pages"],
    )
    return figures
