"""The rules of an application, as guards named in its table, and the checks of a submission.

Each guard takes the context of one event and raises a refusal whose ``rule``
is the guard's name; returning means it holds. The committee cannot validate
beyond the national envelope (``Policy.national_posts``) nor, where the policy
sets one, the envelope of the structure's région: the posts counted are those
validated for every application holding posts, read under a lock that
serialises committee decisions (PostgreSQL: an advisory transaction lock;
SQLite: its write lock, taken at the start of every write transaction).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from states import clock
from states.applications.models import Application
from states.applications.table import HOLDING_POSTS, AppEvent
from states.clock import add_months, paris_day
from states.errors import BadInput, NotAllowed, RuleViolation
from states.geo import DEPARTEMENTS, region_of
from states.models import Structure
from states.policy import Policy
from states.registry import check_departement
from states.rules import active_contracts_of_structure, actor_kind_may_fire, moves_forward


@dataclass
class AppContext:
    """Everything a guard or an effect needs to know about one event of an application."""

    session: Session
    app: Application
    structure: Structure
    event: AppEvent
    actor: str
    at: datetime
    data: dict[str, Any]
    policy: Policy
    flow_run_id: str | None = None
    internal: bool = False

    def day(self, key: str = "date") -> date:
        value = self.data.get(key)
        return date.fromisoformat(value) if value else paris_day(self.at)


# ---------------------------------------------------------------- the submission's data

_SIRET = re.compile(r"^\d{14}$")
#: La Poste's SIREN: its establishments' SIRETs are checked by the sum of their digits, not by Luhn.
LA_POSTE_SIREN = "356000000"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def with_key(first: str) -> str:
    """Return the SIRET made of the 13 digits ``first`` and the Luhn key that makes it valid."""
    return next(first + key for key in "0123456789" if luhn_ok(first + key))


def check_siret(value: str) -> str:
    """Return a valid SIRET (14 digits, Luhn key; La Poste: sum of digits a multiple of 5), spaces removed."""
    siret = re.sub(r"\s", "", value or "")
    if not _SIRET.match(siret):
        raise BadInput(f"SIRET '{value}' is not 14 digits (rule: siret_valid): give the establishment's SIRET")
    valid = sum(map(int, siret)) % 5 == 0 if siret.startswith(LA_POSTE_SIREN) else luhn_ok(siret)
    if not valid:
        raise BadInput(f"SIRET '{value}' has a wrong check key (rule: siret_valid): check the number with INSEE")
    return siret


def check_submission(data: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """Check the submission's values beyond their types; return them cleaned."""
    if data["kind"] not in ("public", "private"):
        raise BadInput(f"kind '{data['kind']}' is unknown (rule: kind_valid): use public (collectivité) or private")
    if data["posts"] < 1:
        raise BadInput(f"posts must be at least 1, got {data['posts']} (rule: posts_requested): give a number of posts")
    limit = policy.subsidy.convention_months
    if not 1 <= data["duration"] <= limit:
        raise BadInput(
            f"a contract of {data['duration']} months cannot be funded (rule: duration_valid): "
            f"give a duration from 1 to {limit} months"
        )
    return {**data, "siret": check_siret(data["siret"]), "departement": check_departement(data["departement"])}


# ---------------------------------------------------------------- every event


def actor_may_fire(ctx: AppContext) -> None:
    """Who acts: the actor's kind may fire the event; a structure or a préfet acts on its own applications."""
    kind, ref = actor_kind_may_fire(ctx.actor, ctx.event.name, ctx.event.who, ctx.internal)
    owner = {"structure": str(ctx.app.structure_id), "prefet": ctx.app.departement}.get(kind)
    if owner is not None and ref != owner:
        whose = f"département {owner}" if kind == "prefet" else f"structure:{owner}"
        raise NotAllowed(
            f"{ctx.actor} acts only on its own applications (rule: actor_may_fire): application {ctx.app.id} "
            f"belongs to {whose}",
            rule="actor_may_fire",
        )


def not_in_future(ctx: AppContext) -> None:
    clock.not_in_future(ctx.at)


def history_moves_forward(ctx: AppContext) -> None:
    moves_forward(f"application {ctx.app.id}", ctx.app.last_at, ctx.at)


# ---------------------------------------------------------------- the table's guards


def opinion_allowed(ctx: AppContext) -> None:
    if ctx.data["opinion"] not in ("favourable", "unfavourable"):
        raise RuleViolation(
            f"opinion '{ctx.data['opinion']}' is unknown (rule: opinion_allowed): give favourable or unfavourable",
            rule="opinion_allowed",
        )


def _change(ctx: AppContext) -> int | None:
    """The pending change of posts the event decides on, or None for the first decision."""
    return ctx.app.change_posts if ctx.app.state != "prefet_reviewed" else None


def decided_posts(ctx: AppContext) -> int:
    """Return the posts the application holds once the committee's decision (``validate``) applies."""
    change, posts = _change(ctx), ctx.data["posts"]
    if change is None:
        return int(posts)
    return ctx.app.posts_validated + (posts if change > 0 else -posts)


def posts_within_request(ctx: AppContext) -> None:
    """The committee validates at least one post and at most those requested (or asked for in a change)."""
    change, posts = _change(ctx), ctx.data["posts"]
    asked = ctx.app.posts_requested if change is None else abs(change)
    if not 1 <= posts <= asked:
        what = "requested" if change is None else ("asked for" if change > 0 else "given back")
        raise RuleViolation(
            f"the committee would validate {posts} post(s) for {asked} {what} (rule: posts_within_request): "
            f"validate from 1 to {asked}, or refuse",
            rule="posts_within_request",
        )


def lock_envelope(session: Session) -> None:
    """Serialise the committee's decisions until the transaction ends (SQLite's write lock already does)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(4000)"))


def _held(session: Session, exclude: int | None, departements: Iterable[str] | None = None) -> int:
    q = select(func.coalesce(func.sum(Application.posts_validated), 0)).where(
        col(Application.state).in_([s.value for s in HOLDING_POSTS]), col(Application.id) != (exclude or 0)
    )
    if departements is not None:
        q = q.where(col(Application.departement).in_(list(departements)))
    return int(session.exec(q).one())


def within_envelope(ctx: AppContext) -> None:
    """Validated posts never exceed the national envelope, nor the région's where the policy sets one."""
    lock_envelope(ctx.session)
    after = decided_posts(ctx)
    national = _held(ctx.session, ctx.app.id) + after
    if national > ctx.policy.national_posts:
        raise RuleViolation(
            f"validating would bring the posts validated nationally to {national}, beyond the envelope of "
            f"{ctx.policy.national_posts} (rule: within_envelope): validate fewer posts or refuse",
            rule="within_envelope",
        )
    region = region_of(ctx.app.departement)
    envelope = ctx.policy.regional_posts.get(region)
    if envelope is not None:
        codes = [d for d in DEPARTEMENTS if region_of(d) == region]
        regional = _held(ctx.session, ctx.app.id, codes) + after
        if regional > envelope:
            raise RuleViolation(
                f"validating would bring the posts validated in {region} to {regional}, beyond its envelope of "
                f"{envelope} (rule: within_envelope): validate fewer posts or refuse",
                rule="within_envelope",
            )


def posts_not_under_contract(ctx: AppContext) -> None:
    """Giving back posts never leaves a structure with fewer posts than active contracts."""
    if ctx.event.name == "request_change":
        after = ctx.app.posts_validated + ctx.data["posts"]
    elif _change(ctx) is not None and (_change(ctx) or 0) < 0:
        after = decided_posts(ctx)
    else:
        return
    active = active_contracts_of_structure(ctx.session, ctx.app.structure_id)
    if after < active:
        raise RuleViolation(
            f"structure {ctx.app.structure_id} has {active} active contract(s); {after} post(s) would be left "
            "(rule: posts_not_under_contract): a post held by an active contract cannot be given back",
            rule="posts_not_under_contract",
        )


def change_within_limits(ctx: AppContext) -> None:
    posts = ctx.data["posts"]
    if posts == 0 or ctx.app.posts_validated + posts < 0:
        raise RuleViolation(
            f"a change of {posts} post(s) for {ctx.app.posts_validated} held (rule: change_within_limits): "
            f"ask for more posts (positive) or give back at most {ctx.app.posts_validated} (negative)",
            rule="change_within_limits",
        )


def convention_start_valid(ctx: AppContext) -> None:
    """The convention starts on or after the committee and lasts at most ``convention_months``."""
    start = date.fromisoformat(ctx.data["start"])
    months = ctx.policy.subsidy.convention_months
    floor = ctx.app.committee_on
    if floor is not None and start < floor:
        raise RuleViolation(
            f"the convention would start on {start}, before the committee of {floor} (rule: convention_start_valid): "
            "give a start on or after it",
            rule="convention_start_valid",
        )
    end = date.fromisoformat(ctx.data["end"]) if ctx.data.get("end") else None
    if end is not None and not start < end <= add_months(start, months):
        raise RuleViolation(
            f"a convention from {start} to {end} (rule: convention_start_valid): it ends after its start and at "
            f"most {months} months later, on or before {add_months(start, months)}",
            rule="convention_start_valid",
        )


def no_active_contract(ctx: AppContext) -> None:
    active = active_contracts_of_structure(ctx.session, ctx.app.structure_id)
    if active:
        raise RuleViolation(
            f"structure {ctx.app.structure_id} has {active} active contract(s) (rule: no_active_contract): "
            "close the application once its contracts have ended",
            rule="no_active_contract",
        )


GUARDS: dict[str, Callable[[AppContext], None]] = {
    guard.__name__: guard
    for guard in (
        actor_may_fire,
        not_in_future,
        history_moves_forward,
        opinion_allowed,
        posts_within_request,
        within_envelope,
        posts_not_under_contract,
        change_within_limits,
        convention_start_valid,
        no_active_contract,
    )
}
