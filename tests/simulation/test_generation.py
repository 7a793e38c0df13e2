"""The generated programme: shaped like the real one, exactly the posts asked, candidates with job data only."""

from __future__ import annotations

from collections import Counter

import pytest
from simulated import POLICY, SMALL

from states.geo import DEPARTEMENTS
from states.simulation import EMPLOYERS, generate, make_config


def test_programme_has_structures_in_every_departement_and_the_real_mix_of_employers() -> None:
    config = make_config(4000, 3, None, POLICY)
    prog = generate(config)
    assert sum(s.posts for s in prog.structures) == config.posts
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


@pytest.mark.parametrize("posts", [1, 2, 7, 61])
def test_posts_add_up_to_what_was_asked(posts: int) -> None:
    prog = generate(make_config(posts, 5, None, POLICY))
    assert sum(s.posts for s in prog.structures) == posts


def test_candidates_hold_only_job_related_data() -> None:
    prog = generate(make_config(SMALL, 1, None, POLICY))
    assert {f for f in prog.candidates[0].__dataclass_fields__} == {"name", "email", "departement"}
