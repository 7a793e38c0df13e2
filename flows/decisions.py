"""The inbox: one suspended flow run per case waiting on a person's decision, and the cases' pages kept fresh.

A case waits on a person in two steps: a presented candidate (the structure selects or declines) and a
contacted training organisation (the structure signs the contract). For each such case, ``follow-cases``
opens one ``decide-case`` run, named in French and tagged ``decision``, ``case:<id>`` and
``departement:<code>``: the run suspends itself (``suspend_flow_run`` with ``wait_for_input``), so no
process waits, and the UI's run list filtered on "Suspended" and a département is that préfecture's
inbox. Resuming it shows the decision's form; the answer fires the event through the core (``act``), and a
refusal ends that run ``Failed`` with its French line (the next ``follow-cases`` opens a new decision).

The database stays the truth: a decision run holds nothing of its own. Resumed, a suspended run restarts
from the top: it reads the case again, and if the case has left the step meanwhile (deadline, another
channel) it ends ``Completed`` saying why, without acting. ``follow-cases`` also closes, with the same
message, the suspended runs whose case left its step, and never opens two runs for one case and step
(the open ones are found by their tags; a run's idempotency key guards against two ``follow-cases`` at once).

Last, ``follow-cases`` refreshes the page (artifact ``case-<id>``) of every case whose history grew since
its previous run (the sweep, the payment run, ``conum``...): the last history row it saw, and a digest
of the database it saw it in, are kept in the Prefect variable ``conum_case_pages_watermark``.
"""

from __future__ import annotations

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
from flows.common import engine, settings
from states.audit import digest
from states.casepage import state_label
from states.db import read_session
from states.errors import ConumError
from states.eventdata import ContractData
from states.lifecycle import State as CaseState
from states.models import Case, History, Structure
from states.refusals import french

DEPLOYMENT = "decide-case/decide-case"
WATERMARK = "conum_case_pages_watermark"
#: A decision waits this long at most (then its run fails, and ``follow-cases`` opens another one).
SUSPEND_SECONDS = 90 * 24 * 3600
OPEN_TYPES = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED]
ENDED_TYPES = [StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED]
DUPLICATE = "Décision en double : une autre run attend déjà la même décision sur le dossier n° {case_id}."


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


class _ContractAnswerBase(RunInput):
    """Le contrat que la structure signe avec le candidat retenu."""

    model_config = ConfigDict(title="Signer le contrat")


def _contract_answer() -> type[RunInput]:
    """The contract's form (from the event's model) and who acts, as the answer a decision run waits for."""
    form = form_model(ContractData)
    assert form is not None
    fields: dict[str, Any] = {name: (info.annotation, info) for name, info in form.model_fields.items()}
    fields["acteur"] = (str, Field("admin", title="Qui agit", description=ACTOR_HELP, pattern=ACTOR_PATTERN))
    model: type[RunInput] = create_model("ContractAnswer", __base__=_ContractAnswerBase, **fields)
    return model


ContractAnswer = _contract_answer()


@dataclass(frozen=True)
class Waiting:
    """A step where a case waits on a person: what the decision run is called and asks for."""

    verb: str
    answer: type[RunInput]

    def event(self, answer: Any) -> tuple[str, dict[str, Any], str]:
        """Return the event, its data and the actor an answer fires."""
        values = answer.model_dump(exclude={"acteur"})
        if isinstance(answer, SelectionAnswer):
            if answer.decision == "retenir":
                return "select", {}, answer.acteur
            return "decline", {"reason": answer.motif or ""}, answer.acteur
        return "sign_contract", as_data({k: v for k, v in values.items() if v is not None}), answer.acteur


WAITING: dict[str, Waiting] = {
    CaseState.CANDIDATE_PRESENTED.value: Waiting("retenir ou décliner le candidat", SelectionAnswer),
    CaseState.TRAINING_ORG_CONTACTED.value: Waiting("signer le contrat", ContractAnswer),
}


def left_step(case_id: int, state: str) -> str:
    """Say, in French, why a decision is no longer waited for."""
    return f"Plus de décision à prendre : le dossier n° {case_id} est maintenant à l'étape « {state_label(state)} »."


def pause_key(state: str) -> str:
    """Return the key of a decision's pause: Prefect takes only lowercase letters, digits and dashes."""
    return "decision-" + state.replace("_", "-")


@flow(name="decide-case", retries=0, persist_result=False)
def decide_case(dossier: int) -> State:
    """Wait (suspended, no process) for the decision a case waits on, then act on it.

    Args:
        dossier: Numéro du dossier qui attend une décision.
    """
    logger = get_run_logger()
    try:
        _, _, state = where(dossier)
    except ConumError as exc:
        return Completed(message=french(exc))
    waiting = WAITING.get(state)
    if waiting is None:
        logger.info("%s", left_step(dossier, state))
        return Completed(message=left_step(dossier, state))
    answer = suspend_flow_run(wait_for_input=waiting.answer, timeout=SUSPEND_SECONDS, key=pause_key(state))
    event, data, actor = waiting.event(answer)
    return act(dossier, event, actor, data)


# ---------------------------------------------------------------- follow-cases


def _decision_runs(client: Any, tags: list[str], types: list[StateType] | None = None) -> list[FlowRun]:
    runs: list[FlowRun] = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=["decision", *tags]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=types)) if types else None,
        ),
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["decide-case"])),
        limit=200 if tags else None,
    )
    return runs


def _tag_value(run: FlowRun, prefix: str) -> str | None:
    return next((t.removeprefix(prefix) for t in run.tags if t.startswith(prefix)), None)


def _waiting_cases() -> dict[int, tuple[str, str, str]]:
    """Return the cases waiting on a person: state, département, structure name."""
    with read_session(engine()) as session:
        rows = session.exec(
            select(Case.id, Case.state, Structure.departement, Structure.name)
            .join(Structure, col(Structure.id) == col(Case.structure_id))
            .where(col(Case.state).in_(list(WAITING)))
        ).all()
    return {row[0] or 0: (row[1], row[2], row[3]) for row in rows}


def _run_name(case_id: int, state: str, departement: str, structure: str) -> str:
    short = " ".join(structure.split())[:60]
    return f"Décision dossier {case_id} : {WAITING[state].verb} ({short}, {departement})"


def _why_closed(case_id: int, state: str | None) -> str:
    if state is None:
        try:
            state = where(case_id)[2]
        except ConumError as exc:
            return french(exc)
    return left_step(case_id, state)


def open_decisions(client: Any, waiting: dict[int, tuple[str, str, str]]) -> tuple[int, int]:
    """Open a decision run for each waiting case that has none; close those no longer waited for."""
    opened = closed = 0
    covered: set[int] = set()
    for run in _decision_runs(client, [], OPEN_TYPES):
        case_id = int(_tag_value(run, "case:") or 0)
        step = _tag_value(run, "etape:")
        now_state = waiting.get(case_id, (None,))[0]
        paused = run.state is not None and run.state.type == StateType.PAUSED
        if now_state is not None and now_state == step and case_id not in covered:
            covered.add(case_id)
        elif paused:
            why = DUPLICATE.format(case_id=case_id) if case_id in covered else _why_closed(case_id, now_state)
            client.set_flow_run_state(run.id, Completed(message=why), force=True)
            closed += 1
    deployment = client.read_deployment_by_name(DEPLOYMENT) if set(waiting) - covered else None
    for case_id, (state, departement, structure) in sorted(waiting.items()):
        if case_id in covered or deployment is None:
            continue
        tags = [f"case:{case_id}", f"etape:{state}"]
        # the key names the decision and how many of its runs have ended (a refused answer opens another):
        # two follow-cases at once count the same, and the server keeps one run for both
        before = len(_decision_runs(client, tags, ENDED_TYPES))
        client.create_flow_run_from_deployment(
            deployment.id,
            parameters={"dossier": case_id},
            name=_run_name(case_id, state, departement, structure),
            tags=["decision", *tags, f"departement:{departement}"],
            idempotency_key=f"decision-{case_id}-{state}-{before}",
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
    """Open the decisions waiting on a person, close those no longer waited for, refresh the changed pages.

    Args:
        limit: Pages refreshed at most per run (the next run goes on).
    """
    waiting = _waiting_cases()
    with get_client(sync_client=True) as client:
        opened, closed = open_decisions(client, waiting)
    pages = refresh_pages(limit)
    figures = {"waiting": len(waiting), "opened": opened, "closed": closed, "pages": pages}
    get_run_logger().info(
        "%d dossier(s) en attente d'une décision, %d décision(s) ouverte(s), %d close(s), %d page(s) mise(s) à jour",
        len(waiting),
        opened,
        closed,
        pages,
    )
    return figures
