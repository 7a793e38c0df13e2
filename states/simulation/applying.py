"""The application phase of a simulated programme: structures apply, the préfet gives an opinion, the committee
validates (sometimes fewer posts than requested) or refuses, the structure signs its convention, then recruits.

As for the cases, each decision is a ``Plan`` the day loop tries through the real transition service
(``states.applications.service``), and the model reacts to what came of it. The national envelope of the
simulated programme is its posts (``Config.posts``); structures request a little more
(``Rates.extra_requests``), so the envelope runs out: the committee's last validations are refused by the
rule ``within_envelope``, and it then validates the posts left, or refuses when none is left, at its next
session. The committee meets every ``Rates.committee_every_days``; its sessions are numbered (COSELEC-1, ...).
A structure's posts are opened to recruitment (``Slot``) once its convention is signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from states.applications import service as applications
from states.applications.models import Application
from states.errors import ConumError
from states.policy import Policy
from states.simulation.behaviour import Behaviour, Plan, Slot
from states.simulation.config import Config
from states.simulation.generation import StructureSpec
from states.simulation.rates import between

if TYPE_CHECKING:
    from states.simulation.dayloop import RunStats

_OPINIONS = {
    "favourable": ("projet cohérent avec le diagnostic territorial", "besoin de médiation numérique avéré"),
    "unfavourable": ("structure déjà dotée de médiateurs numériques", "projet insuffisamment précis"),
}
_REFUSALS = ("avis défavorable du préfet", "projet hors des critères de l'appel à manifestation d'intérêt")
_WITHDRAWALS = ("projet reporté", "financement de la part restante non trouvé", "changement de l'équipe municipale")
_ENVELOPE_SPENT = "enveloppe nationale épuisée"


@dataclass
class Applicant:
    """The model's view of one structure's application."""

    spec: StructureSpec
    app: int = 0
    structure: int = 0
    state: str = "planned"  # planned | submitted | prefet_reviewed | validated | convention_signed | ended
    posts: int = 0  # validated
    envelope_refusals: int = 0


#: What each application event is counted as in the run's figures (case events keep their own names).
def counted(event: str) -> str:
    return f"application_{event}"


class Applying(Behaviour):
    """The people of the application phase: structures, préfets and the committee."""

    stats: RunStats  # the day loop's (``Simulation``)
    flow_run_id: str | None

    def __init__(self, policy: Policy, config: Config) -> None:
        super().__init__(policy.model_copy(update={"national_posts": config.posts}), config)
        self.applicants: list[Applicant] = []
        self.validated_posts = 0

    # ------------------------------------------------------------ planning

    def _plan_apply(self, spec: StructureSpec) -> None:
        self.applicants.append(Applicant(spec))
        day = self.config.start + timedelta(days=spec.opens_after)
        self._push(Plan(self._when(day), "apply", applicant=len(self.applicants) - 1, event="submit"))

    def _plan_app(
        self, index: int, days: int, event: str, actor: str, data: dict[str, Any], blind: bool = False
    ) -> None:
        plan = Plan(self._after(days), "application", applicant=index, event=event, actor=actor, data=data, blind=blind)
        self._push(plan)

    def _session(self, earliest: date) -> tuple[int, date]:
        """Return the number and day of the committee's first session on or after ``earliest``."""
        every = self.rates.committee_every_days
        number = max(0, -(-(earliest - self.config.start).days // every))
        return number + 1, self.config.start + timedelta(days=number * every)

    def _plan_committee(self, index: int, posts: int, refuse: str | None = None) -> None:
        number, day = self._session(self.today + timedelta(days=self.rates.committee_notice))
        committee = f"COSELEC-{number}"
        if refuse is not None:
            data = {"reason": refuse, "committee": committee}
            self._plan_app(index, (day - self.today).days, "refuse", "admin", data)
        else:
            data = {"posts": str(posts), "committee": committee, "date": day.isoformat()}
            self._plan_app(index, (day - self.today).days, "validate", "admin", data)

    # ------------------------------------------------------------ trying a plan

    def _try_application(self, s: Session, plan: Plan) -> None:
        who = self.applicants[plan.applicant]
        if who.state == "ended" and not plan.blind:
            return  # the structure knows its application is over
        try:
            with s.begin_nested():
                if plan.kind == "apply":
                    app, _ = applications.submit(
                        s, self._submission(who.spec), at=plan.at, policy=self.policy, flow_run_id=self.flow_run_id
                    )
                else:
                    app = applications.fire(
                        s,
                        who.app,
                        plan.event,
                        actor=plan.actor,
                        at=plan.at,
                        data=plan.data,
                        policy=self.policy,
                        flow_run_id=self.flow_run_id,
                    )
        except ConumError as exc:
            self.stats.refused[exc.rule] += 1
            self.stats.refused_events[counted(plan.event)] += 1
            self._app_refused(plan, exc)
            return
        self.stats.actions[counted(plan.event)] += 1
        getattr(self, f"_after_app_{plan.event}")(plan.applicant, app)

    @staticmethod
    def _submission(spec: StructureSpec) -> dict[str, Any]:
        return {
            "name": spec.name,
            "siret": spec.siret,
            "kind": spec.kind,
            "departement": spec.departement,
            "posts": spec.posts,
            "email": spec.email,
        }

    # ------------------------------------------------------------ after each event

    def _after_app_submit(self, index: int, app: Application) -> None:
        r, rates, who = self.rng, self.rates, self.applicants[index]
        who.app, who.structure, who.state = app.id or 0, app.structure_id, app.state
        if r.random() < rates.app_withdraw:
            data = {"reason": r.choice(_WITHDRAWALS)}
            self._plan_app(
                index, between(r, rates.app_withdraw_days), "withdraw", f"structure:{who.structure}", data, True
            )
        late = r.random() < rates.late_opinion
        days = between(r, rates.late_opinion_days if late else rates.opinion_days)
        opinion = "unfavourable" if r.random() < rates.unfavourable else "favourable"
        data = {"opinion": opinion, "comment": r.choice(_OPINIONS[opinion])}
        self._plan_app(index, days, "give_opinion", f"prefet:{who.spec.departement}", data)

    def _after_app_give_opinion(self, index: int, app: Application) -> None:
        r, rates, who = self.rng, self.rates, self.applicants[index]
        who.state = app.state
        refuse = rates.refuse_unfavourable if app.opinion == "unfavourable" else rates.refuse_favourable
        if r.random() < refuse:
            self._plan_committee(index, 0, refuse=_REFUSALS[0] if app.opinion == "unfavourable" else _REFUSALS[1])
            return
        posts = app.posts_requested
        if posts > 1 and r.random() < rates.reduce:
            posts -= r.randint(1, posts - 1)
        self._plan_committee(index, posts)

    def _after_app_validate(self, index: int, app: Application) -> None:
        r, rates, who = self.rng, self.rates, self.applicants[index]
        who.state, who.posts = app.state, app.posts_validated
        self.validated_posts += app.posts_validated
        start = self.today + timedelta(days=between(r, rates.convention_days))
        data = {"start": start.isoformat()}
        self._plan_app(index, (start - self.today).days, "sign_convention", f"structure:{who.structure}", data)

    def _after_app_refuse(self, index: int, app: Application) -> None:
        self.applicants[index].state = "ended"

    def _after_app_withdraw(self, index: int, app: Application) -> None:
        self.applicants[index].state = "ended"

    def _after_app_sign_convention(self, index: int, app: Application) -> None:
        who = self.applicants[index]
        who.state = app.state
        for _ in range(who.posts):
            self.slots.append(Slot(who.structure, who.spec.departement))
            self._plan_present(len(self.slots) - 1, between(self.rng, self.rates.present_days))

    def _app_refused(self, plan: Plan, exc: ConumError) -> None:
        """The committee validated beyond the envelope: at its next session it validates what is left, or refuses."""
        if plan.event != "validate" or exc.rule != "within_envelope":
            return
        who = self.applicants[plan.applicant]
        who.envelope_refusals += 1
        left = min(self.policy.national_posts - self.validated_posts, int(plan.data["posts"]))
        if left > 0 and who.envelope_refusals == 1:
            self._plan_committee(plan.applicant, left)
        else:
            self._plan_committee(plan.applicant, 0, refuse=_ENVELOPE_SPENT)
