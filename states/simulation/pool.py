"""The candidates free to be presented, by département, drawn local first, then regional, then anywhere.

The order of the members depends only on the operations made, never on
hashing: the same operations and the same generator draw the same candidate.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from states.geo import DEPARTEMENTS, region_of
from states.simulation.rates import Rates


class IndexedSet:
    """Integers with O(1) add, discard and random choice, in an order that depends only on the operations."""

    def __init__(self) -> None:
        self.items: list[int] = []
        self.pos: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, x: object) -> bool:
        return x in self.pos

    def add(self, x: int) -> None:
        if x not in self.pos:
            self.pos[x] = len(self.items)
            self.items.append(x)

    def discard(self, x: int) -> None:
        i = self.pos.pop(x, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.pos[last] = i

    def choice(self, rng: random.Random) -> int:
        return self.items[rng.randrange(len(self.items))]


class Pool:
    """The candidates free to be presented, by département."""

    def __init__(self) -> None:
        self.by_dep: dict[str, IndexedSet] = {code: IndexedSet() for code in DEPARTEMENTS}
        self.deps_of_region: dict[str, list[str]] = {}
        for code in DEPARTEMENTS:
            self.deps_of_region.setdefault(region_of(code), []).append(code)
        self.dep_of: dict[int, str] = {}

    def __len__(self) -> int:
        return sum(len(s) for s in self.by_dep.values())

    def add(self, candidate: int, dep: str) -> None:
        self.dep_of[candidate] = dep
        self.by_dep[dep].add(candidate)

    def discard(self, candidate: int) -> None:
        dep = self.dep_of.get(candidate)
        if dep is not None:
            self.by_dep[dep].discard(candidate)

    def _among(self, rng: random.Random, codes: Sequence[str]) -> int | None:
        sizes = [(code, len(self.by_dep[code])) for code in codes]
        total = sum(n for _, n in sizes)
        if total == 0:
            return None
        r = rng.randrange(total)
        for code, n in sizes:
            if r < n:
                return self.by_dep[code].items[r]
            r -= n
        return None  # pragma: no cover - r < total

    def draw(self, rng: random.Random, dep: str, rates: Rates) -> int | None:
        """Pick a free candidate for a post in ``dep``: local first, then the région, then anywhere."""
        local = self.by_dep[dep]
        if local and rng.random() < rates.local:
            return local.choice(rng)
        if rng.random() < rates.regional:
            found = self._among(rng, self.deps_of_region[region_of(dep)])
            if found is not None:
                return found
        return self._among(rng, list(self.by_dep))
