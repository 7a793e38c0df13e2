"""Every programme rule, as a guard named in the lifecycle table.

Each guard takes the context of one event and raises a refusal
(``RuleViolation``, ``NotAllowed``) whose ``rule`` is the guard's own name, with
a message that names it and says what to do; returning means it holds. The
guards every event passes first (``COMMON_GUARDS`` of the table: who may act,
a history that moves forward) are here too, as are those of the opening
event (one contract per candidate, no duplicate presentation). The README's
rules table lists the same names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, func
from sqlmodel import Session, col, select

from states import clock, money
from states.clock import add_months, paris_day, show, utc, whole_months
from states.errors import BadInput, NotAllowed, RuleViolation
from states.lifecycle import ACTIVE_CONTRACT, PRE_CONTRACT, Event
from states.models import Candidate, Case, Structure, TrainingOrg
from states.policy import Policy


@dataclass
class Context:
    """Everything a guard or an effect needs to know about one event."""

    session: Session
    case: Case
    structure: Structure
    candidate: Candidate
    event: Event
    actor: str
    at: datetime
    data: dict[str, Any]
    policy: Policy
    flow_run_id: str | None = None
    #: Who created the flow run, where the Prefect server knows it (``type:name``); None on Prefect's OSS server.
    created_by: str | None = None
    #: True for the sweep, the payment run and what the service fires itself: the only ones acting as system.
    internal: bool = False
    #: Fires an event on another case in the same transaction (as ``system``): the service sets it.
    cascade: Callable[[Case, str, datetime, dict[str, Any]], None] | None = None

    def day(self, key: str = "date") -> date:
        """Return the date given in the data, or the Paris day of the event."""
        value = self.data.get(key)
        return date.fromisoformat(value) if value else paris_day(self.at)


# Built once: building a statement costs more than running it from the compiled cache.
_ACTIVE = [s.value for s in ACTIVE_CONTRACT]
_COUNT_OF_STRUCTURE = (
    select(func.count())
    .select_from(Case)
    .where(col(Case.structure_id) == bindparam("structure_id"), col(Case.state).in_(_ACTIVE))
)
_COUNT_OF_STRUCTURE_EXCLUDING = _COUNT_OF_STRUCTURE.where(col(Case.id) != bindparam("exclude"))
_OF_CANDIDATE = select(Case).where(col(Case.candidate_id) == bindparam("candidate_id"), col(Case.state).in_(_ACTIVE))
_OF_CANDIDATE_FIRST = _OF_CANDIDATE.limit(1)
_OF_CANDIDATE_EXCLUDING_FIRST = _OF_CANDIDATE.where(col(Case.id) != bindparam("exclude")).limit(1)


def active_contracts_of_structure(session: Session, structure_id: int, exclude: int | None = None) -> int:
    if exclude is None:
        return int(session.exec(_COUNT_OF_STRUCTURE, params={"structure_id": structure_id}).one())
    params = {"structure_id": structure_id, "exclude": exclude}
    return int(session.exec(_COUNT_OF_STRUCTURE_EXCLUDING, params=params).one())


def active_contract_of_candidate(session: Session, candidate_id: int, exclude: int | None = None) -> Case | None:
    if exclude is None:
        return session.exec(_OF_CANDIDATE_FIRST, params={"candidate_id": candidate_id}).first()
    params = {"candidate_id": candidate_id, "exclude": exclude}
    return session.exec(_OF_CANDIDATE_EXCLUDING_FIRST, params=params).first()


_ACTOR = re.compile(r"^(admin|system|structure:\d+|candidate:\d+|prefet:(\d[0-9AB]|\d{3}))$")


def parse_actor(text: str) -> str:
    """Validate an actor: admin, system, structure:<id>, candidate:<id> or prefet:<département>."""
    if not _ACTOR.match(text or ""):
        raise BadInput(
            f"unknown actor '{text}': use admin, system, structure:<id>, candidate:<id> or prefet:<département>"
        )
    return text


# ---------------------------------------------------------------- every event


def actor_kind_may_fire(actor: str, event: str, who: tuple[str, ...], internal: bool) -> tuple[str, str]:
    """Refuse an actor whose kind may not fire ``event`` (and any person acting as system); return (kind, ref)."""
    kind, _, ref = actor.partition(":")
    if kind == "system" and not internal:
        raise NotAllowed(
            "no person may act as system (rule: actor_may_fire): system acts only through the sweep and the "
            "payment run; act as admin, structure:<id>, candidate:<id> or prefet:<département>",
            rule="actor_may_fire",
        )
    if kind not in who:
        raise NotAllowed(
            f"{actor} may not fire '{event}' (rule: actor_may_fire): only {', '.join(who)} may",
            rule="actor_may_fire",
        )
    return kind, ref


def actor_may_fire(ctx: Context) -> None:
    """Who acts: the actor's kind is in the event's ``who``, and a structure, candidate or préfet acts on its own."""
    actor, case = ctx.actor, ctx.case
    kind, ref = actor_kind_may_fire(actor, ctx.event.name, ctx.event.who, ctx.internal)
    owner = {
        "structure": str(case.structure_id),
        "candidate": str(case.candidate_id),
        "prefet": ctx.structure.departement,
    }.get(kind)
    if owner is not None and ref != owner:
        whose = f"département {owner}" if kind == "prefet" else f"{kind}:{owner}"
        raise NotAllowed(
            f"{actor} acts only on its own cases (rule: actor_may_fire): case {case.id} belongs to {whose}",
            rule="actor_may_fire",
        )


def not_in_future(ctx: Context) -> None:
    """An action is not dated after the real clock (``CONUM_CLOCK=simulated`` and a simulation lift this)."""
    clock.not_in_future(ctx.at)


def moves_forward(what: str, last_at: datetime, at: datetime) -> None:
    """Refuse an event at ``at`` dated before ``last_at``, the end of the history of ``what`` (e.g. "case 3")."""
    if at < utc(last_at):
        raise RuleViolation(
            f"{what}'s history ends at {show(last_at)}; an event at {show(at)} would go "
            "back in time (rule: history_moves_forward): give an instant on or after it",
            rule="history_moves_forward",
        )


def history_moves_forward(ctx: Context) -> None:
    """An event is not dated before the last one of the case's history."""
    moves_forward(f"case {ctx.case.id}", ctx.case.last_at, ctx.at)


# ---------------------------------------------------------------- presenting a candidate

_OPEN_HERE = select(Case.id).where(
    col(Case.candidate_id) == bindparam("candidate_id"),
    col(Case.structure_id) == bindparam("structure_id"),
    col(Case.state).in_([s.value for s in PRE_CONTRACT]),
)


def candidate_not_anonymised(ctx: Context) -> None:
    """An anonymised candidate has left the pool for good."""
    if ctx.candidate.anonymised_at is not None:
        raise RuleViolation(
            f"candidate {ctx.candidate.id} was anonymised on {paris_day(ctx.candidate.anonymised_at)} "
            "(rule: candidate_not_anonymised): they left the pool; add them again only with their new consent",
            rule="candidate_not_anonymised",
        )


def convention_signed(ctx: Context) -> None:
    """A structure is presented candidates only once its convention with the State is signed."""
    from states.applications.models import Application
    from states.applications.table import LABELS, RECRUITING, AppState

    q = select(Application.id, Application.state).where(Application.structure_id == ctx.structure.id)
    found = ctx.session.exec(q).first()
    if found is not None and AppState(found[1]) not in RECRUITING:  # no application: added before they existed
        raise RuleViolation(
            f"structure {ctx.structure.id} has no signed convention: its application {found[0]} is at "
            f"'{found[1]}' ({LABELS[AppState(found[1])]}) (rule: convention_signed): present candidates once "
            "its convention is signed",
            rule="convention_signed",
        )


def not_presented_twice(ctx: Context) -> None:
    """A candidate has at most one open case with a structure."""
    params = {"candidate_id": ctx.candidate.id, "structure_id": ctx.structure.id}
    open_here = ctx.session.exec(_OPEN_HERE, params=params).first()
    if open_here is not None:
        raise RuleViolation(
            f"candidate {ctx.candidate.id} is already presented to structure {ctx.structure.id} in case {open_here} "
            "(rule: not_presented_twice): follow that case",
            rule="not_presented_twice",
        )


# ---------------------------------------------------------------- the table's guards


def known_training_org(ctx: Context) -> None:
    if ctx.session.get(TrainingOrg, ctx.data["org"]) is None:
        raise RuleViolation(
            f"training organisation {ctx.data['org']} does not exist (rule: known_training_org): "
            "pick an id from the approved list or add it with `conum training-org add`",
            rule="known_training_org",
        )


def contract_type_allowed(ctx: Context) -> None:
    kind, types = ctx.data["type"], ctx.policy.contract_types
    if kind not in types:
        raise RuleViolation(
            f"contract type '{kind}' is not allowed (rule: contract_type_allowed): use one of {', '.join(types)}",
            rule="contract_type_allowed",
        )


def contract_dates_valid(ctx: Context) -> None:
    """A CDI has no end; any other contract ends after its start, at least one whole month later."""
    kind, start, end = ctx.data["type"], date.fromisoformat(ctx.data["start"]), ctx.data.get("end")
    rule = "contract_dates_valid"
    selected = paris_day(ctx.case.selected_at) if ctx.case.selected_at else None
    if selected is not None and start < selected:
        raise RuleViolation(
            f"the contract would start on {start}, before the candidate was selected on {selected} (rule: {rule}): "
            "give the real start, on or after the selection",
            rule=rule,
        )
    latest = add_months(paris_day(ctx.at), ctx.policy.contract_start_horizon_months)
    if start > latest:
        raise RuleViolation(
            f"the contract would start on {start}, more than {ctx.policy.contract_start_horizon_months} months "
            f"after its signature (rule: {rule}): sign it closer to its start, on or before {latest}",
            rule=rule,
        )
    if kind == "CDI":
        if end:
            raise RuleViolation(
                f"a CDI has no end date (rule: {rule}): drop 'end' or choose a fixed-term type", rule=rule
            )
        return
    if not end:
        raise RuleViolation(f"a {kind} needs an end date (rule: {rule}): add --set end=YYYY-MM-DD", rule=rule)
    if date.fromisoformat(end) > start and whole_months(start, date.fromisoformat(end)) < 1:
        raise RuleViolation(
            f"a contract from {start} to {end} lasts less than one whole month (rule: {rule}): "
            "the subsidy is paid by whole months; give a longer contract",
            rule=rule,
        )
    if date.fromisoformat(end) <= start:
        raise RuleViolation(
            f"the contract ends on {end}, not after its start {start} (rule: {rule}): give an end after the start",
            rule=rule,
        )


def funded_within_convention(ctx: Context) -> None:
    """The funded period ends within the convention with the State, counted from the signature."""
    start = date.fromisoformat(ctx.data["start"])
    end = date.fromisoformat(ctx.data["end"]) if ctx.data.get("end") else None
    funded = money.funded_months(ctx.policy, ctx.data["type"], start, end)
    limit = add_months(paris_day(ctx.at), ctx.policy.subsidy.convention_months)
    if add_months(start, funded) > limit:
        raise RuleViolation(
            f"{funded} funded months from {start} end after the convention of "
            f"{ctx.policy.subsidy.convention_months} months signed on {paris_day(ctx.at)} "
            "(rule: funded_within_convention): start the contract earlier",
            rule="funded_within_convention",
        )


def salary_at_least_smic(ctx: Context) -> None:
    start = date.fromisoformat(ctx.data["start"])
    rate = ctx.policy.smic_on(start)
    rule = "salary_at_least_smic"
    if rate is None:
        raise RuleViolation(
            f"no SMIC is known on {start} (rule: {rule}): add the rate in force to the policy file", rule=rule
        )
    salary = ctx.data["salary_cents"]
    if salary < rate.monthly_cents:
        raise RuleViolation(
            f"salary {salary / 100:.2f} € is below the SMIC of {rate.monthly_cents / 100:.2f} € in force on {start} "
            f"(since {rate.since}) (rule: {rule}): offer at least the SMIC",
            rule=rule,
        )


_LOCKS = {
    model: select(model.id).where(col(model.id) == bindparam("row_id")).with_for_update()
    for model in (Structure, Candidate)
}


def lock(session: Session, model: type[Structure] | type[Candidate], row_id: int) -> None:
    """Take the row lock of a structure or a candidate until the transaction ends (PostgreSQL).

    Two signings for the same structure (or candidate) then count active contracts one after
    the other. SQLite needs nothing: its write transactions already run one at a time.
    """
    if session.get_bind().dialect.name != "sqlite":
        session.exec(_LOCKS[model], params={"row_id": row_id}).first()


def within_quota(ctx: Context) -> None:
    """A structure never has more active contracts than posts attributed."""
    lock(ctx.session, Structure, ctx.structure.id or 0)
    active = active_contracts_of_structure(ctx.session, ctx.structure.id or 0, exclude=ctx.case.id)
    if active >= ctx.structure.posts:
        raise RuleViolation(
            f"structure {ctx.structure.id} already has {active} active contract(s) for {ctx.structure.posts} post(s) "
            "(rule: within_quota): end a contract or ask for more posts before signing",
            rule="within_quota",
        )


def candidate_free(ctx: Context) -> None:
    """A candidate holds at most one active contract: to be presented, and to sign."""
    lock(ctx.session, Candidate, ctx.candidate.id or 0)
    other = active_contract_of_candidate(ctx.session, ctx.candidate.id or 0, exclude=ctx.case.id)
    if other is None:
        return
    if ctx.case.id is None:  # presenting
        raise RuleViolation(
            f"candidate {ctx.candidate.id} holds an active contract in case {other.id} (rule: candidate_free): "
            "present another candidate",
            rule="candidate_free",
        )
    raise RuleViolation(
        f"candidate {ctx.candidate.id} already holds an active contract in case {other.id} "
        "(rule: candidate_free): that contract must end first",
        rule="candidate_free",
    )


def training_dates_valid(ctx: Context) -> None:
    """Training starts on or after the contract start, ends on or after its own start, and neither is ahead."""
    day, rule = ctx.day(), "training_dates_valid"
    if day > paris_day(ctx.at):
        raise RuleViolation(
            f"date {day} is after the action's own day {paris_day(ctx.at)} (rule: {rule}): record it once it happened",
            rule=rule,
        )
    floor, what = ctx.case.contract_start, "the contract start"
    if ctx.event.name == "complete_training" and ctx.case.training_start:
        floor, what = ctx.case.training_start, "the training start"
    if floor and day < floor:
        raise RuleViolation(
            f"date {day} is before {what} {floor} (rule: {rule}): give a date on or after it", rule=rule
        )


def rupture_reason_allowed(ctx: Context) -> None:
    reason, reasons = ctx.data["reason"], ctx.policy.rupture_reasons
    if reason not in reasons:
        raise RuleViolation(
            f"rupture reason '{reason}' is not allowed (rule: rupture_reason_allowed): use one of {', '.join(reasons)}",
            rule="rupture_reason_allowed",
        )


def rupture_within_contract(ctx: Context) -> None:
    day, start, end = ctx.day(), ctx.case.contract_start, ctx.case.contract_end
    rule = "rupture_within_contract"
    if start is None or day < start or (end is not None and day > end):
        raise RuleViolation(
            f"rupture date {day} is outside the contract ({start} to {end or 'open-ended'}) (rule: {rule}): "
            "give a date within the contract",
            rule=rule,
        )
    last = max((d for d in (ctx.case.training_start, ctx.case.in_post_on) if d is not None), default=None)
    if last is not None and day < last:
        raise RuleViolation(
            f"rupture date {day} is before the last fact of the case, {last} (rule: {rule}): "
            "give a date on or after it",
            rule=rule,
        )
    if day > paris_day(ctx.at):
        raise RuleViolation(
            f"rupture date {day} is after the action's own day {paris_day(ctx.at)} (rule: {rule}): "
            "record the rupture once it happened",
            rule=rule,
        )


GUARDS: dict[str, Callable[[Context], None]] = {
    guard.__name__: guard
    for guard in (
        actor_may_fire,
        not_in_future,
        history_moves_forward,
        candidate_not_anonymised,
        convention_signed,
        not_presented_twice,
        known_training_org,
        contract_type_allowed,
        contract_dates_valid,
        funded_within_convention,
        salary_at_least_smic,
        within_quota,
        candidate_free,
        training_dates_valid,
        rupture_reason_allowed,
        rupture_within_contract,
    )
}


def check(ctx: Any, names: Iterable[str], guards: Mapping[str, Callable[[Any], None]] = GUARDS) -> None:
    """Run the guards ``names`` (of ``guards``: a case's, an application's) in order; the first that fails raises."""
    for name in names:
        guards[name](ctx)
