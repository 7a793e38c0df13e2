"""Each rule of a structure's application, as an operator meets it: refused with the rule named, or not."""

from __future__ import annotations

from typing import Any

import pytest
from applying import Apps
from helpers import snapshot
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from states import batch, registry
from states.applications import service
from states.applications.rules import check_siret
from states.applications.views import get_application
from states.clock import parse_instant
from states.db import write_session
from states.errors import BadInput, ConumError, IllegalEvent, NotAllowed, RuleViolation
from states.models import Outbox, Structure
from states.policy import Policy


def refusal(fn: Any, kind: type[ConumError] = RuleViolation) -> str:
    with pytest.raises(kind) as caught:
        fn()
    return str(caught.value)


# ---------------------------------------------------------------- the submission's data


@pytest.mark.parametrize("good", ["73282932000074", "732 829 320 00074", "35600000000001"])
def test_siret_with_a_valid_key_or_la_poste_sum_is_accepted(good: str) -> None:
    assert check_siret(good) == good.replace(" ", "")


@pytest.mark.parametrize("bad", ["73282932000075", "35600000000002", "7328293200007", "7328293200007A", ""])
def test_siret_wrong_key_or_length_is_refused(bad: str) -> None:
    assert "rule: siret_valid" in refusal(lambda: check_siret(bad), BadInput)


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("departement", "99", "departement"),
        ("kind", "mixed", "kind_valid"),
        ("duration", 37, "duration_valid"),
        ("duration", 0, "duration_valid"),
        ("posts", 0, "posts_requested"),
    ],
)
def test_bad_submission_is_refused_and_changes_nothing(
    apps: Apps, engine: Engine, field: str, value: Any, rule: str
) -> None:
    before = snapshot(engine)
    message = refusal(lambda: apps.submit(**{field: value}), BadInput)
    assert rule in message or "département code" in message
    assert snapshot(engine) == before


def test_same_siret_gives_the_existing_application(apps: Apps, engine: Engine, policy: Policy) -> None:
    first = apps.submit()
    data = {"name": "Autre nom", "siret": "732 829 320 00074", "kind": "private", "departement": "75", "posts": 9}
    with write_session(engine) as s:
        app, _ = service.submit(s, data, at=parse_instant("2026-01-06T10:00"), policy=policy)
        again, new = service.submit(s, data, at=parse_instant("2026-01-07T10:00"), policy=policy)
    assert (again.id, new) == (app.id, False) and app.id != first
    assert get_application(engine, app.id or 0)["posts_requested"] == 9


# ---------------------------------------------------------------- who acts, and the table


def test_prefet_gives_the_opinion_of_its_own_departement_only(apps: Apps) -> None:
    app = apps.submit(departement="33")
    msg = refusal(
        lambda: apps.fire(app, "give_opinion", "2026-01-06T10:00", actor="prefet:86", opinion="favourable"), NotAllowed
    )
    assert "rule: actor_may_fire" in msg
    view = apps.fire(app, "give_opinion", "2026-01-06T10:00", actor="prefet:33", opinion="unfavourable", comment="x")
    assert (view["state"], view["opinion"]) == ("prefet_reviewed", "unfavourable")


def test_committee_cannot_decide_before_the_opinion(apps: Apps) -> None:
    app = apps.submit()
    msg = refusal(lambda: apps.fire(app, "validate", "2026-01-06T10:00", posts="1", committee="C1"), IllegalEvent)
    assert "rule: lifecycle" in msg and "give_opinion" in msg


def test_only_admin_decides_for_the_committee(apps: Apps) -> None:
    app = apps.submit()
    apps.fire(app, "give_opinion", "2026-01-06T10:00", actor="prefet:33", opinion="favourable")
    msg = refusal(
        lambda: apps.fire(app, "validate", "2026-01-07T10:00", actor="structure:1", posts="1", committee="C1"),
        NotAllowed,
    )
    assert "rule: actor_may_fire" in msg


def test_committee_validates_at_most_the_posts_requested(apps: Apps, engine: Engine) -> None:
    app = apps.submit(posts=2)
    apps.fire(app, "give_opinion", "2026-01-06T10:00", actor="prefet:33", opinion="favourable")
    before = snapshot(engine)
    msg = refusal(lambda: apps.fire(app, "validate", "2026-01-07T10:00", posts="3", committee="C1"))
    assert "rule: posts_within_request" in msg
    assert snapshot(engine) == before
    view = apps.fire(app, "validate", "2026-01-07T10:00", posts="1", committee="C1", date="2026-01-07")
    assert (view["state"], view["posts_validated"], view["committee"]) == ("validated", 1, "C1")


def test_refused_application_ends(apps: Apps) -> None:
    app = apps.submit()
    apps.fire(app, "give_opinion", "2026-01-06T10:00", actor="prefet:33", opinion="unfavourable")
    view = apps.fire(app, "refuse", "2026-01-07T10:00", reason="hors critères")
    assert view["state"] == "refused" and view["posts_validated"] == 0
    assert "none" in refusal(lambda: apps.fire(app, "withdraw", "2026-01-08T10:00"), IllegalEvent)


def test_structure_withdraws_before_validation_only(apps: Apps) -> None:
    app = apps.submit()
    assert apps.fire(app, "withdraw", "2026-01-06T10:00", actor=f"structure:{app}")["state"] == "withdrawn"
    other = apps.validated()
    assert "rule: lifecycle" in refusal(lambda: apps.fire(other, "withdraw", "2026-01-26T10:00"), IllegalEvent)


# ---------------------------------------------------------------- envelopes


def test_committee_cannot_validate_beyond_the_national_envelope(engine: Engine) -> None:
    apps = Apps(engine, Policy(national_posts=5))
    apps.validated(posts=3)
    app = apps.submit(posts=3)
    apps.fire(app, "give_opinion", "2026-01-10T10:00", actor="prefet:33", opinion="favourable")
    msg = refusal(lambda: apps.fire(app, "validate", "2026-01-20T10:00", posts="3", committee="C2"))
    assert "rule: within_envelope" in msg and "5" in msg
    assert apps.fire(app, "validate", "2026-01-20T10:00", posts="2", committee="C2")["posts_validated"] == 2


def test_committee_cannot_validate_beyond_a_regional_envelope(engine: Engine) -> None:
    apps = Apps(engine, Policy(regional_posts={"Nouvelle-Aquitaine": 2}))
    apps.validated(posts=2, departement="33")
    app = apps.submit(posts=1, departement="86")
    apps.fire(app, "give_opinion", "2026-01-10T10:00", actor="prefet:86", opinion="favourable")
    msg = refusal(lambda: apps.fire(app, "validate", "2026-01-20T10:00", posts="1", committee="C2"))
    assert "rule: within_envelope" in msg and "Nouvelle-Aquitaine" in msg
    elsewhere = apps.validated(posts=3, departement="75")  # another région has no envelope
    assert elsewhere


# ---------------------------------------------------------------- conventions and recruiting


def _present(engine: Engine, structure: int, policy: Policy, at: str = "2026-03-01T10:00") -> int:
    from states import service as cases

    with write_session(engine) as s:
        cid = registry.add_candidate(s, name="Camille Durand", email="camille@exemple.fr")
    with write_session(engine) as s:
        return cases.present(s, structure, cid, at=parse_instant(at), policy=policy).id or 0


def test_presenting_needs_a_signed_convention(apps: Apps, engine: Engine, policy: Policy) -> None:
    app = apps.validated()
    structure = get_application(engine, app)["structure_id"]
    msg = refusal(lambda: _present(engine, structure, policy))
    assert "rule: convention_signed" in msg
    apps.fire(app, "sign_convention", "2026-01-25T10:00", actor=f"structure:{structure}", start="2026-02-01")
    assert _present(engine, structure, policy)


def test_convention_lasts_at_most_36_months(apps: Apps) -> None:
    app = apps.validated()
    msg = refusal(lambda: apps.fire(app, "sign_convention", "2026-01-25T10:00", start="2026-02-01", end="2029-02-02"))
    assert "rule: convention_start_valid" in msg
    view = apps.fire(app, "sign_convention", "2026-01-25T10:00", start="2026-02-01")
    assert (view["convention_start"], view["convention_end"]) == ("2026-02-01", "2029-01-31")


def test_structure_added_by_hand_is_imported_with_a_signed_convention(world: Any, engine: Engine) -> None:
    structure = world.structure(posts=2)
    case = world.present(structure, world.candidate())
    assert case
    with Session(engine) as s:
        from states.applications.service import recruiting

        assert recruiting(s, structure) is True
    found = [a for a in range(1, 5) if _app_of(engine, a) == structure]
    view = get_application(engine, found[0])
    assert [h["event"] for h in view["history"]] == ["import"]
    assert (view["state"], view["posts_validated"], view["siret"]) == ("convention_signed", 2, None)


def _app_of(engine: Engine, app: int) -> int | None:
    try:
        return int(get_application(engine, app)["structure_id"])
    except ConumError:
        return None


def test_quota_reads_the_validated_posts(apps: Apps, engine: Engine, world: Any) -> None:
    view = apps.signed(posts=3, validate=1)
    with Session(engine) as s:
        assert s.get_one(Structure, view["structure_id"]).posts == 1
    world.signed(structure=view["structure_id"])
    msg = refusal(lambda: world.signed(structure=view["structure_id"]))
    assert "rule: within_quota" in msg


# ---------------------------------------------------------------- more posts, posts given back


def test_more_posts_only_once_the_committee_validates(apps: Apps, engine: Engine) -> None:
    app = apps.signed(posts=2)["id"]
    view = apps.fire(app, "request_change", "2026-03-01T10:00", actor="structure:1", posts="3", reason="forte demande")
    assert (view["state"], view["posts_validated"], view["change_posts"]) == ("change_requested", 2, 3)
    apps.fire(app, "give_opinion", "2026-03-05T10:00", actor="prefet:33", opinion="favourable")
    assert "rule: posts_within_request" in refusal(
        lambda: apps.fire(app, "validate", "2026-03-10T10:00", posts="4", committee="C3")
    )
    view = apps.fire(app, "validate", "2026-03-10T10:00", posts="2", committee="C3")
    assert (view["state"], view["posts_validated"], view["change_posts"]) == ("convention_signed", 4, None)
    with Session(engine) as s:
        assert s.get_one(Structure, view["structure_id"]).posts == 4


def test_refused_change_keeps_the_posts(apps: Apps) -> None:
    app = apps.signed(posts=2)["id"]
    apps.fire(app, "request_change", "2026-03-01T10:00", posts="-1", reason="moins de besoins")
    apps.fire(app, "give_opinion", "2026-03-05T10:00", actor="prefet:33", opinion="unfavourable")
    view = apps.fire(app, "refuse", "2026-03-10T10:00", reason="non")
    assert (view["state"], view["posts_validated"]) == ("convention_signed", 2)


def test_giving_back_a_post_held_by_an_active_contract_is_refused(apps: Apps, world: Any) -> None:
    view = apps.signed(posts=2)
    app, structure = view["id"], view["structure_id"]
    world.signed(structure=structure)
    world.signed(structure=structure)
    msg = refusal(lambda: apps.fire(app, "request_change", "2026-04-01T10:00", posts="-1", reason="x"))
    assert "rule: posts_not_under_contract" in msg
    assert "rule: change_within_limits" in refusal(
        lambda: apps.fire(app, "request_change", "2026-04-01T10:00", posts="-3", reason="x")
    )
    assert "rule: no_active_contract" in refusal(lambda: apps.fire(app, "close", "2026-04-01T10:00"))


# ---------------------------------------------------------------- deadlines


def test_sweep_reminds_the_prefet_then_escalates_to_the_anct_once(apps: Apps, engine: Engine, policy: Policy) -> None:
    app = apps.submit(at="2026-01-05T10:00")
    first = batch.sweep(engine, parse_instant("2026-01-16T10:00"), policy)
    again = batch.sweep(engine, parse_instant("2026-01-16T10:00"), policy)
    assert [s.action for s in first.application_steps] == ["remind"] and again.application_steps == []
    later = batch.sweep(engine, parse_instant("2026-01-21T10:00"), policy)
    assert [(s.action, s.level) for s in later.application_steps] == [("escalate", 3)]
    view = get_application(engine, app)
    assert [h["event"] for h in view["history"]] == ["submit", "remind", "escalate"]
    assert {h["actor"] for h in view["history"][1:]} == {"system"}
    with Session(engine) as s:
        kinds = [(o.kind, o.recipient) for o in s.exec(select(Outbox).order_by(col(Outbox.id)))]
    assert kinds == [
        ("application_submitted", "prefet"),
        ("application_reminder", "prefet"),
        ("application_escalation", "anct"),
    ]
    view = apps.fire(app, "give_opinion", "2026-01-22T10:00", actor="prefet:33", opinion="favourable")
    assert view["escalation_level"] == 0 and view["due_at"] is not None  # the committee's clock starts


def test_system_events_are_the_sweeps_alone(apps: Apps) -> None:
    app = apps.submit()
    assert "sweep" in refusal(lambda: apps.fire(app, "remind", "2026-01-06T10:00"), IllegalEvent)
