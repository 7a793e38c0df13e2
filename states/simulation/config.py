"""What one simulation is: its size, its seed, its first day, the employers' mix and the rates.

``make_config`` is the one door for what a user gives: it refuses, with
``BadInput`` saying what to fix, a size, seed or start the programme cannot
have, and rates that cannot describe people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from states.errors import BadInput
from states.policy import Policy
from states.simulation.rates import Rates

#: The programme's first day when none is given (a Monday).
DEFAULT_START = date(2026, 1, 5)
#: Largest programme the command accepts: the real one has about 4,000 posts.
MAX_POSTS = 100_000


@dataclass(frozen=True)
class Employer:
    """One kind of host structure: its share of the employers and how many posts it usually gets."""

    key: str
    label: str  # French, shown in the report
    kind: str  # public | private (the subsidy base depends on it)
    weight: float  # relative number of structures of this kind
    posts: tuple[float, float, float]  # relative chances of 1, 2 and 3 posts


#: The mix of employers of the real programme (2022): about 1,100 communes, 484 EPCIs and 1,200+
#: associations, plus a few dozen départements, régions and libraries with their own posts.
EMPLOYERS: tuple[Employer, ...] = (
    Employer("commune", "Communes", "public", 1100, (0.78, 0.17, 0.05)),
    Employer("epci", "Intercommunalités (EPCI)", "public", 484, (0.55, 0.30, 0.15)),
    Employer("association", "Associations", "private", 1250, (0.80, 0.15, 0.05)),
    Employer("departement", "Départements", "public", 45, (0.20, 0.30, 0.50)),
    Employer("region", "Régions", "public", 8, (0.10, 0.30, 0.60)),
    Employer("mediatheque", "Bibliothèques et médiathèques", "public", 60, (0.85, 0.12, 0.03)),
)


@dataclass(frozen=True)
class Config:
    """What one simulation is: its size, its seed, its first day, the employers' mix and the rates."""

    posts: int = 4000
    seed: int = 1
    start: date = DEFAULT_START
    #: Candidates in the national pool per post.
    candidates_per_post: float = 1.6
    training_orgs: int = 36
    #: Below this many posts, structures are not forced into every département.
    cover_all_from: int = 400
    employers: tuple[Employer, ...] = EMPLOYERS
    rates: Rates = field(default_factory=Rates)


def make_config(posts: int, seed: int, start: str | date | None, policy: Policy, **extra: Any) -> Config:
    """Validate what a user gives and return the configuration; raise ``BadInput`` saying what to fix."""
    if isinstance(posts, bool) or not isinstance(posts, int) or posts < 1:
        raise BadInput(f"--posts must be a whole number of at least 1, got {posts!r}: give e.g. --posts 4000")
    if posts > MAX_POSTS:
        raise BadInput(f"--posts {posts} is more than {MAX_POSTS:,}: the real programme has about 4,000 posts")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise BadInput(f"--seed must be a whole number, got {seed!r}")
    if start is None:
        first = DEFAULT_START
    elif isinstance(start, date):
        first = start
    else:
        try:
            first = date.fromisoformat(str(start).strip())
        except ValueError:
            raise BadInput(f"--start '{start}' is not a date: write it as YYYY-MM-DD, e.g. 2026-01-05") from None
    if policy.smic_on(first) is None:
        since = policy.smic[0].since if policy.smic else None
        raise BadInput(
            f"--start {first} is before the first SMIC the policy knows ({since}): start on or after it, "
            "or add the rate in force to the policy file"
        )
    config = Config(posts=posts, seed=seed, start=first, **extra)
    config.rates.check()
    return config
