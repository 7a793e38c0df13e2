"""The dashboard's posts: requested, validated and under contract, by place and against the envelopes."""

from __future__ import annotations

from typing import Any

from applying import Apps
from sqlalchemy import Engine

from states import dashboard
from states.applications.figures import ENVELOPE, LEFT, REQUESTED, UNDER_CONTRACT, VALIDATED
from states.clock import parse_instant
from states.policy import Policy


def test_posts_by_departement_region_and_nationally_against_the_envelopes(engine: Engine, world: Any) -> None:
    apps = Apps(engine, Policy(regional_posts={"Nouvelle-Aquitaine": 10}))
    signed = apps.signed(posts=3, validate=2)  # Gironde
    world.signed(structure=signed["structure_id"])
    apps.submit(posts=4, departement="75")  # waiting for its opinion
    policy = Policy(regional_posts={"Nouvelle-Aquitaine": 10})
    d = dashboard.build(engine, parse_instant("2026-06-01T10:00"), policy)
    gironde = next(r for r in d.posts.by_departement if r["département"] == "33")
    assert (gironde["nom"], gironde[REQUESTED], gironde[VALIDATED], gironde[UNDER_CONTRACT]) == ("Gironde", 3, 2, 1)
    regions = {r["région"]: r for r in d.posts.by_region}
    assert (regions["Nouvelle-Aquitaine"][ENVELOPE], regions["Nouvelle-Aquitaine"][LEFT]) == (10, 8)
    assert (regions["Île-de-France"][REQUESTED], regions["Île-de-France"][ENVELOPE]) == (4, None)
    (national,) = d.posts.national
    assert (national[REQUESTED], national[VALIDATED], national[ENVELOPE], national[LEFT]) == (7, 2, 4000, 3998)
