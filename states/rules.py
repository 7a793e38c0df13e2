"""Programme rules, as guards named in the lifecycle table.

Each guard takes the context of one event and raises ``RuleViolation`` with a
message that names the rule and says what to do; returning means it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, func
from sqlmodel import Session, col, select

from states.clock import paris_day, whole_months
from states.errors import RuleViolation
from states.lifecycle import ACTIVE_CONTRACT, Event
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
    extra: dict[str, Any] = field(default_factory=dict)

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


def known_training_org(ctx: Context) -> None:
    if ctx.session.get(TrainingOrg, ctx.data["org"]) is None:
        raise RuleViolation(
            f"training organisation {ctx.data['org']} does not exist (rule: approved training organisation): "
            "pick an id from the approved list or add it with `conum training-org add`",
            rule="training_org",
        )


def valid_contract(ctx: Context) -> None:
    kind, start, end = ctx.data["type"], date.fromisoformat(ctx.data["start"]), ctx.data.get("end")
    types = ctx.policy.contract_types
    if kind not in types:
        raise RuleViolation(
            f"contract type '{kind}' is not allowed (rule: contract types): use one of {', '.join(types)}",
            rule="contract_type",
        )
    if kind == "CDI":
        if end:
            raise RuleViolation(
                "a CDI has no end date (rule: contract dates): drop 'end' or choose a fixed-term type",
                rule="contract_dates",
            )
        return
    if not end:
        raise RuleViolation(
            f"a {kind} needs an end date (rule: contract dates): add --set end=YYYY-MM-DD", rule="contract_dates"
        )
    if date.fromisoformat(end) > start and whole_months(start, date.fromisoformat(end)) < 1:
        raise RuleViolation(
            f"a contract from {start} to {end} lasts less than one whole month (rule: contract dates): "
            "the subsidy is paid by whole months; give a longer contract",
            rule="contract_dates",
        )
    if date.fromisoformat(end) <= start:
        raise RuleViolation(
            f"the contract ends on {end}, not after its start {start} (rule: contract dates): "
            "give an end after the start",
            rule="contract_dates",
        )


def salary_at_least_smic(ctx: Context) -> None:
    start = date.fromisoformat(ctx.data["start"])
    rate = ctx.policy.smic_on(start)
    if rate is None:
        raise RuleViolation(
            f"no SMIC is known on {start} (rule: SMIC floor): add the rate in force to the policy file",
            rule="smic",
        )
    salary = ctx.data["salary_cents"]
    if salary < rate.monthly_cents:
        raise RuleViolation(
            f"salary {salary / 100:.2f} € is below the SMIC of {rate.monthly_cents / 100:.2f} € in force on {start} "
            f"(since {rate.since}) (rule: SMIC floor): offer at least the SMIC",
            rule="smic",
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
    lock(ctx.session, Structure, ctx.structure.id or 0)
    active = active_contracts_of_structure(ctx.session, ctx.structure.id or 0, exclude=ctx.case.id)
    if active >= ctx.structure.posts:
        raise RuleViolation(
            f"structure {ctx.structure.id} already has {active} active contract(s) for {ctx.structure.posts} post(s) "
            "(rule: quota): end a contract or ask for more posts before signing",
            rule="quota",
        )


def candidate_free(ctx: Context) -> None:
    lock(ctx.session, Candidate, ctx.candidate.id or 0)
    other = active_contract_of_candidate(ctx.session, ctx.candidate.id or 0, exclude=ctx.case.id)
    if other is not None:
        raise RuleViolation(
            f"candidate {ctx.candidate.id} already holds an active contract in case {other.id} "
            "(rule: one contract per candidate): that contract must end first",
            rule="candidate_contract",
        )


def date_not_before_contract(ctx: Context) -> None:
    day = ctx.day()
    if day > paris_day(ctx.at):
        raise RuleViolation(
            f"date {day} is after the action's own day {paris_day(ctx.at)} (rule: dates): record it once it happened",
            rule="dates",
        )
    floor, what = ctx.case.contract_start, "the contract start"
    if ctx.event.name == "complete_training" and ctx.case.training_start:
        floor, what = ctx.case.training_start, "the training start"
    if floor and day < floor:
        raise RuleViolation(
            f"date {day} is before {what} {floor} (rule: training after the contract): give a date on or after it",
            rule="dates",
        )


def valid_rupture(ctx: Context) -> None:
    reason, reasons = ctx.data["reason"], ctx.policy.rupture_reasons
    if reason not in reasons:
        raise RuleViolation(
            f"rupture reason '{reason}' is not allowed (rule: rupture reasons): use one of {', '.join(reasons)}",
            rule="rupture_reason",
        )
    day, start, end = ctx.day(), ctx.case.contract_start, ctx.case.contract_end
    if start is None or day < start or (end is not None and day > end):
        raise RuleViolation(
            f"rupture date {day} is outside the contract ({start} to {end or 'open-ended'}) (rule: rupture date): "
            "give a date within the contract",
            rule="rupture_date",
        )
    if day > paris_day(ctx.at):
        raise RuleViolation(
            f"rupture date {day} is after the action's own day {paris_day(ctx.at)} (rule: rupture date): "
            "record the rupture once it happened",
            rule="rupture_date",
        )


GUARDS: dict[str, Callable[[Context], None]] = {
    "known_training_org": known_training_org,
    "valid_contract": valid_contract,
    "salary_at_least_smic": salary_at_least_smic,
    "within_quota": within_quota,
    "candidate_free": candidate_free,
    "date_not_before_contract": date_not_before_contract,
    "valid_rupture": valid_rupture,
}
