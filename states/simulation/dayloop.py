"""The simulated clock and the day loop: each day the sweep, the people's actions, the payments, the mail.

Every action goes through the real transition service, one write
transaction per simulated day with a savepoint per action, so a refused
action is an outcome to count, not a crash. Once a day the deadline sweep,
the payment run and the outbox delivery run as their deployments would; the
delivery, like its deployment, in a process of its own
(``states.outbox.process``), rendering each day's mail from a snapshot of
that day while the day loop goes on. The simulated clock is the only clock.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from states import batch, outbox, service
from states.applications.models import Application
from states.clock import add_months, simulated_clock, utc
from states.config import Settings
from states.db import write_session
from states.errors import ConumError
from states.models import Candidate, Case, Outbox, TrainingOrg, Tranche
from states.outbox.process import BackgroundDelivery
from states.policy import Policy
from states.simulation.applying import Applying
from states.simulation.behaviour import Plan, Track, at_paris
from states.simulation.config import Config
from states.simulation.generation import Programme, generate


@dataclass
class MonthReport:
    """What happened during one simulated month."""

    month: str
    days: int = 0
    actions: int = 0
    refused: int = 0
    reminded: int = 0
    escalated: int = 0
    timed_out: int = 0
    payments: int = 0
    paid_cents: int = 0
    open_cases: int = 0


@dataclass
class RunStats:
    """Counts of the whole run (the figures the database cannot tell)."""

    seed: int
    posts: int
    start: date
    end: date | None = None
    days: int = 0
    structures_by_employer: dict[str, int] = field(default_factory=dict)
    candidates: int = 0
    training_orgs: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    refused_events: Counter[str] = field(default_factory=Counter)
    reminded: int = 0
    escalated: int = 0
    timed_out: int = 0
    payments: int = 0
    paid_cents: int = 0
    batch_failures: int = 0
    unfilled_posts: int = 0
    open_at_end: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"] = self.start.isoformat()
        d["end"] = self.end.isoformat() if self.end else None
        d["actions"], d["refused"], d["refused_events"] = (
            dict(sorted(self.actions.items())),
            dict(sorted(self.refused.items())),
            dict(sorted(self.refused_events.items())),
        )
        return d


def _months(first: date, last: date) -> list[str]:
    out, y, m = [], first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


#: Delivers the outbox rows due at an instant, at most ``limit`` of them (``states.outbox.deliver``).
Deliver = Callable[[Engine, datetime, Settings, int | None], Any]
#: How the outbox is delivered: in a process of its own beside the day loop (``states.outbox.process``), by a
#: function called in the day loop, or not at all.
Delivery = Deliver | Literal["background"] | None


def inline_delivery(engine: Engine, at: datetime, settings: Settings, limit: int | None) -> Any:
    """A ``Deliver`` that delivers in the day loop itself: the same mail, byte for byte, as the process beside it."""
    return outbox.deliver(engine, at, settings, kinds=None, limit=limit)


class Simulation(Applying):
    """The day loop: people's actions, then the sweep, the payments and the delivery, day after day.

    Call ``setup`` once on an empty, migrated database, then ``run`` (or
    ``run_month`` for each label of ``months``, which is what the Prefect flow
    does), then read the figures from the database (``states.simulation.figures``).
    """

    #: When each daily batch runs (Paris hours): the sweep before people act (``DAY_FROM`` to ``DAY_TO``),
    #: payments and mail after.
    SWEEP_HOUR, PAY_HOUR, DELIVER_HOUR = 7, 20, 21
    NEVER = datetime.max.replace(tzinfo=UTC)

    def __init__(
        self,
        engine: Engine,
        policy: Policy,
        config: Config,
        *,
        out_dir: Path | str,
        deliver: Delivery = "background",
    ) -> None:
        super().__init__(policy, config)
        self.engine = engine
        self.out_dir = Path(out_dir)
        self.mail_dir, self.payment_dir = self.out_dir / "mail", self.out_dir / "payments"
        # never SMTP: a simulation writes its e-mails as files, whatever the environment says
        self.settings = Settings(mail_dir=str(self.mail_dir), payment_dir=str(self.payment_dir), smtp_host=None)
        self.deliver = deliver
        self.courier: BackgroundDelivery | None = None
        self.stats = RunStats(seed=config.seed, posts=config.posts, start=config.start)
        self.flow_run_id: str | None = None
        self.horizon = add_months(config.start, self.rates.horizon_months)
        self.ready = False
        # what the daily batches have to do, known without asking the database (None: ask it)
        self._next_due: datetime | None = None
        self._next_tranche: date | None = None
        self._outbox_dirty = False

    # ------------------------------------------------------------ setup

    def setup(self) -> None:
        """Insert the candidates and training organisations, and plan the structures' applications."""
        if self.deliver == "background" and self.courier is None:
            self.courier = BackgroundDelivery(self.engine, self.settings)  # it starts while the programme is made
        prog = generate(self.config)
        with write_session(self.engine) as s:
            candidate_ids, self.orgs = self._insert(s, prog)
        for spec in prog.structures:
            self._plan_apply(spec)
        for person, cid in zip(prog.candidates, candidate_ids, strict=True):
            self.departement_of[cid] = person.departement
            self.pool.add(cid, person.departement)
        labels = {e.key: e.label for e in self.config.employers}
        self.stats.structures_by_employer = dict(Counter(labels[s.employer] for s in prog.structures))
        self.stats.candidates, self.stats.training_orgs = len(prog.candidates), len(prog.training_orgs)
        self.ready = True

    @staticmethod
    def _insert(s: Session, prog: Programme) -> tuple[list[int], list[int]]:
        """Add the candidates and organisations in bulk (the structures apply, through the service)."""
        candidates = [Candidate(name=p.name, email=p.email, departement=p.departement) for p in prog.candidates]
        orgs = [TrainingOrg(name=n, email=e) for n, e in prog.training_orgs]
        s.add_all(candidates)
        s.add_all(orgs)
        s.flush()
        return [r.id or 0 for r in candidates], [r.id or 0 for r in orgs]

    # ------------------------------------------------------------ the loop

    @property
    def finished(self) -> bool:
        return self.ready and ((not self.heap and self.open_tracks == 0) or self.today > self.horizon)

    def months(self) -> list[str]:
        """The month labels (YYYY-MM) from the start to the horizon; the run may finish earlier."""
        return _months(self.config.start, self.horizon)

    def run(self, progress: Callable[[MonthReport], None] | None = None) -> RunStats:
        """Run every month until the programme is over; return the run's counts."""
        if not self.ready:
            self.setup()
        for label in self.months():
            if self.finished:
                break
            report = self.run_month(label)
            if progress:
                progress(report)
        return self.finish()

    def run_month(self, label: str) -> MonthReport:
        """Run the days of month ``label`` (YYYY-MM) not run yet, until the programme is over."""
        year, month = (int(p) for p in label.split("-"))
        report = MonthReport(label)
        before = (self.stats.reminded, self.stats.escalated, self.stats.timed_out, self.stats.payments)
        acted, refused, paid = sum(self.stats.actions.values()), sum(self.stats.refused.values()), self.stats.paid_cents
        while not self.finished and (self.today.year, self.today.month) == (year, month):
            self.run_day(self.today)
            self.today += timedelta(days=1)
            report.days += 1
        report.actions = sum(self.stats.actions.values()) - acted
        report.refused = sum(self.stats.refused.values()) - refused
        report.reminded = self.stats.reminded - before[0]
        report.escalated = self.stats.escalated - before[1]
        report.timed_out = self.stats.timed_out - before[2]
        report.payments = self.stats.payments - before[3]
        report.paid_cents = self.stats.paid_cents - paid
        report.open_cases = self.open_tracks
        return report

    def close(self) -> None:
        """Stop the delivery process, if any (what it has not sent stays pending in the outbox)."""
        if self.courier is not None:
            self.courier.close()

    def finish(self) -> RunStats:
        """Wait for the last mail, close the run's counts (last day, posts never filled, cases still open)."""
        if self.courier is not None:
            self.courier.drain()
        self.stats.end = self.today - timedelta(days=1)
        self.stats.unfilled_posts = sum(1 for s in self.slots if s.status in ("vacant", "waiting", "presenting"))
        self.stats.open_at_end = self.open_tracks
        return self.stats

    def run_day(self, day: date) -> None:
        """One simulated day (its instants lie in the future of the real clock: the simulation keeps its own)."""
        with simulated_clock():
            self._run_day(day)

    def _run_day(self, day: date) -> None:
        """One simulated day: the sweep at 07:00, people from 09:00 to 18:00, payments, then the mail.

        A batch runs when it has work: the sweep when a deadline step is due, the payment run when a
        tranche is due, the delivery when the outbox received rows (or holds some to retry). On the
        other days its deployment would run and find nothing; skipping it changes no row.
        """
        self.today = day
        self.stats.days += 1
        sweep_at = at_paris(day, self.SWEEP_HOUR)
        if self._sweep_due(sweep_at):
            swept = batch.sweep(self.engine, sweep_at, self.policy)
            self._next_due = None
            self.stats.reminded += swept.reminded
            self.stats.escalated += swept.escalated
            self.stats.timed_out += swept.timed_out
            self.stats.batch_failures += len(swept.failures)
            self._outbox_dirty |= bool(swept.steps) or bool(swept.application_steps)
            for step in swept.steps:
                if step.action == "time_out":
                    self._closed(step.case_id, "expired", back_to_pool=True)
        acted = self._act(day)
        if acted:
            self._next_due = None  # any action may start a deadline clock
            self._outbox_dirty = True
            if acted["complete_training"]:  # a case took post: its first tranche is due; others only go away
                self._next_tranche = None
        if self._pay_due(day):
            paid = batch.pay(self.engine, at_paris(day, self.PAY_HOUR), self.policy)
            self._next_tranche = None
            self.stats.payments += paid.paid
            self.stats.paid_cents += paid.amount_cents
            self.stats.batch_failures += len(paid.failures)
            self._outbox_dirty |= bool(paid.payments)
            for p in paid.payments:
                if p.final:
                    track = self.tracks.get(p.case_id)
                    if track is not None and track.phase != "closed":
                        self.slots[track.slot].status = "done"
                        self._closed(p.case_id, "tranches_paid", back_to_pool=False)
        if self.courier is not None and self._outbox_dirty:
            self.courier.day_over(at_paris(day, self.DELIVER_HOUR))
            self._outbox_dirty = False
        elif callable(self.deliver) and self._outbox_dirty:
            deliver_at = at_paris(day, self.DELIVER_HOUR)
            waiting = self._outbox_waiting(deliver_at)
            report = self.deliver(self.engine, deliver_at, self.settings, waiting) if waiting else None
            self._outbox_dirty = bool(getattr(report, "retried", 0))

    def _sweep_due(self, at: datetime) -> bool:
        """Tell whether a case or an application has a deadline step due at ``at`` (read once per change)."""
        if self._next_due is None:
            with Session(self.engine) as s:
                dues = [s.exec(select(func.min(row.due_at))).one() for row in (Case, Application)]
            firsts = [utc(d) for d in dues if d is not None]
            self._next_due = min(firsts) if firsts else self.NEVER
        return self._next_due <= at

    def _outbox_waiting(self, at: datetime) -> int:
        """Count the outbox rows due at ``at``: the delivery then stops after them, without a last empty claim."""
        with Session(self.engine) as s:
            return int(
                s.exec(
                    select(func.count())
                    .select_from(Outbox)
                    .where(col(Outbox.status).in_(["pending", "sending"]), col(Outbox.next_attempt_at) <= at)
                ).one()
            )

    def _pay_due(self, day: date) -> bool:
        """Tell whether a tranche of a case in post is due on ``day`` (read once per change)."""
        if self._next_tranche is None:
            with Session(self.engine) as s:
                first = s.exec(
                    select(func.min(Tranche.due_on))
                    .join(Case, col(Case.id) == col(Tranche.case_id))
                    .where(col(Case.state) == "in_post", col(Tranche.status) == "scheduled")
                ).one()
            self._next_tranche = first if first is not None else date.max
        return self._next_tranche <= day

    def _act(self, day: date) -> Counter[str]:
        """Let the people act; return the events that changed a case, counted."""
        end = at_paris(day + timedelta(days=1), 0)
        due: list[Plan] = []
        while self.heap and self.heap[0][0] < end:
            due.append(heapq.heappop(self.heap)[2])
        if not due:
            return Counter()
        before = Counter(self.stats.actions)
        with write_session(self.engine) as s:
            for plan in due:
                self._try(s, plan)
        return Counter(self.stats.actions) - before

    def _try(self, s: Session, plan: Plan) -> None:
        if plan.kind in ("apply", "application"):
            self._try_application(s, plan)
            return
        if plan.kind == "present":
            self._present(s, plan)
            return
        track = self.tracks[plan.case]
        if (track.phase == "closed" and not plan.blind) or (plan.event == "cancel" and track.phase != "pre"):
            return  # the people know the case is over (or its contract signed): they do nothing
        try:
            with s.begin_nested():
                case = service.fire(
                    s,
                    plan.case,
                    plan.event,
                    actor=plan.actor,
                    at=plan.at,
                    data=plan.data,
                    policy=self.policy,
                    flow_run_id=self.flow_run_id,
                )
        except ConumError as exc:
            self.stats.refused[exc.rule] += 1
            self.stats.refused_events[plan.event] += 1
            self._refused(track, plan, exc)
            return
        self.stats.actions[plan.event] += 1
        track.state = case.state
        getattr(self, f"_after_{plan.event}")(track, plan)

    def _present(self, s: Session, plan: Plan) -> None:
        slot = self.slots[plan.slot]
        cand = self._draw(slot)
        if cand is None:
            self.stats.refused_events["no_candidate_free"] += 1
            self._plan_present(plan.slot, self.rates.retry_days)
            return
        try:
            with s.begin_nested():
                case = service.present(
                    s, slot.structure, cand, actor="admin", at=plan.at, policy=self.policy, flow_run_id=self.flow_run_id
                )
        except ConumError as exc:
            self.stats.refused[exc.rule] += 1
            self.stats.refused_events["present"] += 1
            self._plan_present(plan.slot, self.rates.retry_days)
            return
        self.stats.actions["present"] += 1
        track = Track(case.id or 0, plan.slot, slot.structure, cand)
        self.tracks[track.case] = track
        self.open_tracks += 1
        slot.status = "recruiting"
        self.pool.discard(cand)
        self.open_cases_of.setdefault(cand, []).append(track.case)
        self._answer(track)
