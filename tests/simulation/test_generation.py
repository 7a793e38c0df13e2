"""The generated programme: shaped like the real one, more posts requested than the envelope, job data only."""

from __future__ import annotations

from collections import Counter

import pytest
from simulated import POLICY, SMALL

from states.applications.rules import check_siret
from states.geo import DEPARTEMENTS
from states.simulation import EMPLOYERS, generate, make_config
from states.simulation.generation import requested_posts


def test_programme_has_structures_in_every_departement_and_the_real_mix_of_employers() -> None:
    config = make_config(4000, 3, None, POLICY)
    prog = generate(config)
    assert sum(s.posts for s in prog.structures) == requested_posts(config) > config.posts
    assert {s.departement for s in prog.structures} == set(DEPARTEMENTS)
    assert all(1 <= s.posts <= 3 for s in prog.structures)
    mix = Counter(s.employer for s in prog.structures)
    weights = {e.key: e.weight for e in EMPLOYERS}
    total_weight = sum(weights.values())
    for employer in ("commune", "epci", "association"):
        share, expected = mix[employer] / len(prog.structures), weights[employer] / total_weight
        assert abs(share - expected) < 0.05, f"{employer}: {share:.2%} of structures, expected about {expected:.2%}"
    assert {s.kind for s in prog.structures if s.employer == "association"} == {"private"}
    assert {s.kind for s in prog.structures if s.employer != "association"} == {"public"}
    assert len(prog.candidates) == round(config.posts * config.candidates_per_post)
    assert 24 <= len(prog.training_orgs) <= 60
    assert len({c.email for c in prog.candidates}) == len(prog.candidates)


@pytest.mark.parametrize(("posts", "requested"), [(1, 2), (2, 3), (7, 9), (61, 77), (4000, 5000)])
def test_structures_request_the_envelope_and_a_quarter_more(posts: int, requested: int) -> None:
    prog = generate(make_config(posts, 5, None, POLICY))
    assert sum(s.posts for s in prog.structures) == requested


def test_each_structure_applies_under_a_valid_siret_of_its_own() -> None:
    prog = generate(make_config(400, 2, None, POLICY))
    sirets = [s.siret for s in prog.structures]
    assert len(set(sirets)) == len(sirets)
    assert all(check_siret(s) == s for s in sirets)


def test_candidates_hold_only_job_related_data() -> None:
    prog = generate(make_config(SMALL, 1, None, POLICY))
    assert {f for f in prog.candidates[0].__dataclass_fields__} == {"name", "email", "departement"}
