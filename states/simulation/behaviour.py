"""The behaviour model: what the people of the programme do after each step of a case, and when.

The platform presents candidates to free posts; structures answer (sometimes
late, sometimes never); candidates withdraw; the préfet cancels; contracts are
signed, trainings start and end, some contracts break and freed posts are
filled again. Each decision is a ``Plan``: an action a person will try at an
instant of a working day. The model decides, the day loop
(``states.simulation.dayloop``) tries the plans through the transition
service and tells the model what came of them. Every draw comes from one
seeded generator, in an order that depends only on what happened.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from states.clock import PARIS, add_months
from states.errors import ConumError
from states.money import funded_months
from states.policy import Policy
from states.rules import salary_at_least_smic
from states.simulation.config import Config
from states.simulation.pool import Pool
from states.simulation.rates import between, weighted


@dataclass
class Slot:
    """One attributed post and what the model knows of it."""

    structure: int
    departement: str
    status: str = "waiting"  # waiting | presenting | recruiting | filled | done | vacant


@dataclass
class Track:
    """The model's view of one case: enough to decide what its people do next."""

    case: int
    slot: int
    structure: int
    candidate: int
    phase: str = "pre"  # pre (before the contract) | contract | closed
    state: str = "candidate_presented"
    contract_start: date | None = None
    contract_end: date | None = None
    selected_on: date | None = None
    rupture: tuple[str, date] | None = None


@dataclass
class Plan:
    """An action a person will try at an instant."""

    at: datetime
    kind: str  # present | fire | apply | application
    slot: int = -1
    applicant: int = -1  # a structure's application (``states.simulation.applying``)
    case: int = 0
    event: str = ""
    actor: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    #: Tried even if the case closed meanwhile: people who act late do not know.
    blind: bool = False


def at_paris(day: date, hour: int, minute: int = 0) -> datetime:
    """Return ``hour:minute`` in Paris on ``day`` as a UTC instant."""
    return datetime.combine(day, time(hour, minute), tzinfo=PARIS).astimezone(UTC)


_DECLINE_REASONS = (
    "profil trop éloigné du poste",
    "candidat trop éloigné géographiquement",
    "expérience de médiation insuffisante",
    "poste finalement pourvu en interne",
    "prétentions salariales",
)
_WITHDRAW_REASONS = ("a trouvé un autre emploi", "raisons personnelles", "déménagement", "reprise d'études")
_CANCEL_REASONS = ("poste réattribué par le comité de pilotage", "structure hors des critères du programme")


class Behaviour:
    """The people of one programme: the plans they make and how they react to what the service answers.

    It holds the model's view of the programme (posts, cases, the free
    candidates) and the queue of plans, ordered by instant then by the order
    they were made. ``states.simulation.dayloop.Simulation`` runs it.
    """

    #: People act on working days between these Paris hours.
    DAY_FROM, DAY_TO = 9, 18

    def __init__(self, policy: Policy, config: Config) -> None:
        self.policy, self.config, self.rates = policy, config, config.rates
        self.rng = random.Random(f"conum-behaviour-{config.seed}")
        self.recruit_until = add_months(config.start, self.rates.recruitment_months)
        self.today = config.start
        self.slots: list[Slot] = []
        self.tracks: dict[int, Track] = {}
        self.open_tracks = 0
        self.pool = Pool()
        self.open_cases_of: dict[int, list[int]] = {}  # candidate -> its cases before contract
        self.departement_of: dict[int, str] = {}  # candidate -> département
        self.gone: set[int] = set()  # candidates who left the pool for good
        self.employed: set[int] = set()
        self.orgs: list[int] = []
        self.heap: list[tuple[datetime, int, Plan]] = []
        self.seq = 0

    # ------------------------------------------------------------ planning

    def _push(self, plan: Plan) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (plan.at, self.seq, plan))

    def _when(self, day: date) -> datetime:
        """A random instant of the working day ``day``."""
        minutes = self.rng.randrange((self.DAY_TO - self.DAY_FROM) * 60)
        return at_paris(day, self.DAY_FROM + minutes // 60, minutes % 60)

    def _after(self, days: int) -> datetime:
        """A random instant ``days`` days from today (at least the next day: people act one step a day)."""
        return self._when(self.today + timedelta(days=max(1, days)))

    def _plan_present(self, slot: int, days: int) -> None:
        day = self.today + timedelta(days=days)
        if day > self.recruit_until:
            self.slots[slot].status = "vacant"
            return
        self.slots[slot].status = "presenting"
        self._push(Plan(self._when(max(day, self.today)), "present", slot=slot))

    def _plan(
        self, track: Track, days: int, event: str, actor: str, data: dict[str, Any] | None = None, blind: bool = False
    ) -> None:
        plan = Plan(self._after(days), "fire", case=track.case, event=event, actor=actor, data=data or {}, blind=blind)
        self._push(plan)

    # ------------------------------------------------------------ presentations

    def _draw(self, slot: Slot) -> int | None:
        rates = self.rates
        if self.rng.random() < rates.multi:
            # someone already presented elsewhere, to another structure
            busy = [c for c, cases in self.open_cases_of.items() if len(cases) == 1 and c not in self.employed]
            if busy:
                cand = busy[self.rng.randrange(len(busy))]
                if self.tracks[self.open_cases_of[cand][0]].structure != slot.structure:
                    return cand
        return self.pool.draw(self.rng, slot.departement, rates)

    def _answer(self, track: Track) -> None:
        """Decide how the structure, the candidate and the préfet react to a presentation."""
        r, rates, who = self.rng, self.rates, f"structure:{track.structure}"
        roll = r.random()
        if roll < rates.decline:
            self._plan(track, between(r, rates.answer_days), "decline", who, {"reason": r.choice(_DECLINE_REASONS)})
        elif roll < rates.decline + rates.silent:
            pass  # the sweep reminds, then times out
        elif roll < rates.decline + rates.silent + rates.too_late:
            self._plan(track, between(r, rates.too_late_days), "select", who, blind=True)
        elif roll < rates.decline + rates.silent + rates.too_late + rates.late_answer:
            self._plan(track, between(r, rates.late_answer_days), "select", who)
        else:
            self._plan(track, between(r, rates.answer_days), "select", who)
        if r.random() < rates.withdraw:
            self._plan(
                track,
                between(r, rates.withdraw_days),
                "withdraw",
                f"candidate:{track.candidate}",
                {"reason": r.choice(_WITHDRAW_REASONS)},
                blind=True,
            )
        if r.random() < rates.cancel:
            dep = self.slots[track.slot].departement
            self._plan(
                track, between(r, rates.cancel_days), "cancel", f"prefet:{dep}", {"reason": r.choice(_CANCEL_REASONS)}
            )

    # ------------------------------------------------------------ after each action

    def _after_select(self, track: Track, plan: Plan) -> None:
        r, rates = self.rng, self.rates
        track.selected_on = self.today
        contact = between(r, rates.contact_days)
        self._plan(track, contact, "contact_training_org", f"structure:{track.structure}", {"org": r.choice(self.orgs)})

    def _after_contact_training_org(self, track: Track, plan: Plan) -> None:
        r, rates = self.rng, self.rates
        roll = r.random()
        if roll < rates.stall:
            return  # the sweep escalates, then times out at day 45
        elapsed = (self.today - (track.selected_on or self.today)).days
        if roll < rates.stall + rates.very_late_sign:
            days = max(1, between(r, rates.very_late_sign_days) - elapsed)
        elif roll < rates.stall + rates.very_late_sign + rates.late_sign:
            days = max(1, between(r, rates.late_sign_days) - elapsed)
        else:
            days = between(r, rates.sign_days)
        sign_day = self.today + timedelta(days=days)
        self._plan(track, days, "sign_contract", f"structure:{track.structure}", self._contract(sign_day))

    def _contract(self, sign_day: date, below_smic: bool | None = None) -> dict[str, str]:
        r, rates = self.rng, self.rates
        kind = weighted(r, rates.contract_types)
        start = sign_day + timedelta(days=between(r, rates.contract_start_days))
        data = {"type": kind, "start": start.isoformat()}
        lengths = dict(rates.contract_months).get(kind)
        if lengths:
            data["end"] = (add_months(start, weighted(r, lengths)) - timedelta(days=1)).isoformat()
        smic = self.policy.smic_on(start)
        floor = smic.monthly_cents if smic else 0
        if below_smic is None:
            below_smic = r.random() < rates.below_smic
        if below_smic:
            salary = floor - r.randint(1_00, 50_00)
        elif r.random() < rates.at_smic:
            salary = floor
        else:
            salary = floor + int(floor * r.uniform(0, rates.salary_premium))
        data["salary"] = f"{salary // 100}.{salary % 100:02d}"
        return data

    def _after_sign_contract(self, track: Track, plan: Plan) -> None:
        r, rates = self.rng, self.rates
        track.phase = "contract"
        self.slots[track.slot].status = "filled"
        cand = track.candidate
        self.employed.add(cand)
        self.pool.discard(cand)
        # the service withdrew the candidate's other cases before their contract
        for other in list(self.open_cases_of.get(cand, [])):
            if other != track.case:
                self._closed(other, "withdrawn", back_to_pool=False)
        self._forget_open(cand, track.case)
        start = date.fromisoformat(plan.data["start"])
        end = date.fromisoformat(plan.data["end"]) if "end" in plan.data else None
        track.contract_start, track.contract_end = start, end
        late = r.random() < rates.late_training
        delay = between(r, rates.late_training_days if late else rates.training_days)
        day = start + timedelta(days=delay)
        self._plan_on(track, day, "start_training", date=day.isoformat())
        if r.random() < rates.rupture:
            self._plan_rupture(track, plan.data["type"], start, end)

    def _plan_on(self, track: Track, day: date, event: str, **data: Any) -> None:
        actor = f"structure:{track.structure}"
        self._push(Plan(self._when(max(day, self.today + timedelta(days=1))), "fire", case=track.case, event=event,
                        actor=actor, data=data))  # fmt: skip

    def _plan_rupture(self, track: Track, kind: str, start: date, end: date | None) -> None:
        r, rates = self.rng, self.rates
        months = funded_months(self.policy, kind, start, end)
        limit = add_months(start, months) - timedelta(days=8)  # before the last tranche is due
        if end is not None:
            limit = min(limit, end)
        first = start + timedelta(days=20)
        if limit <= first:
            return
        reasons = [(k, w) for k, w in rates.rupture_reasons if kind != "CDI" or k != "non_reconduction_cdd"]
        reason = weighted(r, reasons)
        span = (limit - first).days
        if reason in ("non_reconduction_cdd", "fin_de_subventionnement"):
            offset = span - r.randint(0, min(span, 120))  # towards the end of the contract or of the funding
        else:
            offset = r.randint(0, span)
        when = first + timedelta(days=offset)
        track.rupture = (reason, when)
        declared = when + timedelta(days=between(r, rates.rupture_declared_days))
        self._push(
            Plan(
                self._when(max(declared, self.today + timedelta(days=1))),
                "fire",
                case=track.case,
                event="break_contract",
                actor=f"structure:{track.structure}",
                data={"reason": reason, "date": when.isoformat()},
            )
        )

    def _after_start_training(self, track: Track, plan: Plan) -> None:
        r, rates = self.rng, self.rates
        started = date.fromisoformat(plan.data["date"])
        late = r.random() < rates.late_completion
        delay = between(r, rates.late_completion_days if late else rates.completion_days)
        day = add_months(started, self.policy.training_months) + timedelta(days=delay)
        self._plan_on(track, day, "complete_training", date=day.isoformat())

    def _after_complete_training(self, track: Track, plan: Plan) -> None:
        pass  # in post: the payment run pays the tranches as they fall due

    def _after_break_contract(self, track: Track, plan: Plan) -> None:
        r, rates = self.rng, self.rates
        self.employed.discard(track.candidate)
        self._closed(track.case, "broken", back_to_pool=r.random() >= rates.leave_after_rupture)
        if r.random() < rates.replace:
            self._plan_present(track.slot, between(r, rates.replace_days))
        else:
            self.slots[track.slot].status = "vacant"

    def _after_decline(self, track: Track, plan: Plan) -> None:
        self._closed(track.case, "declined", back_to_pool=True)

    def _after_withdraw(self, track: Track, plan: Plan) -> None:
        self._closed(track.case, "withdrawn", back_to_pool=self.rng.random() >= self.rates.leave_after_withdraw)

    def _after_cancel(self, track: Track, plan: Plan) -> None:
        self._closed(track.case, "cancelled", back_to_pool=True)

    def _refused(self, track: Track, plan: Plan, exc: ConumError) -> None:
        if plan.event == "sign_contract" and exc.rule == salary_at_least_smic.__name__ and track.phase == "pre":
            # the structure corrects the salary and signs the next day
            data = self._contract(self.today + timedelta(days=1), below_smic=False)
            self._plan(track, 1, "sign_contract", plan.actor, data)

    # ------------------------------------------------------------ bookkeeping

    def _forget_open(self, cand: int, case: int) -> None:
        cases = self.open_cases_of.get(cand)
        if cases and case in cases:
            cases.remove(case)
            if not cases:
                del self.open_cases_of[cand]

    def _closed(self, case_id: int, state: str, back_to_pool: bool) -> None:
        """A case ended: free its post (unless filled or done) and maybe return its candidate to the pool."""
        track = self.tracks.get(case_id)
        if track is None or track.phase == "closed":
            return
        was_pre = track.phase == "pre"
        track.phase, track.state = "closed", state
        self.open_tracks -= 1
        cand = track.candidate
        self._forget_open(cand, case_id)
        if was_pre and self.slots[track.slot].status == "recruiting":
            self._plan_present(track.slot, between(self.rng, self.rates.present_days))
        if back_to_pool and cand not in self.employed and cand not in self.open_cases_of and cand not in self.gone:
            self.pool.add(cand, self.departement_of[cand])
        elif not back_to_pool and cand not in self.employed:
            self.gone.add(cand)
