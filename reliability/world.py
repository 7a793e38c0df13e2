"""Cases built through the transition service at the stage a trial needs, each with new people."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from states import registry, service
from states.clock import parse_instant
from states.db import write_session
from states.policy import Policy

POLICY = Policy()
T0 = "2026-03-02T10:00"  # Europe/Paris
#: Every case ``due_cases`` builds has one deadline step due at this instant.
SWEEP_AT = "2026-03-12T11:00"
#: The cases ``in_post_cases`` builds have tranches 1 and 2 due then (contracts start on 2026-04-01).
PAY_AT = "2027-04-01T12:00"
CONTRACT = {"type": "CDD", "start": "2026-04-01", "end": "2028-03-31", "salary": "1900.00"}
_serial = itertools.count(1)


def at(text: str, days: int = 0) -> datetime:
    return parse_instant(text) + timedelta(days=days)


class World:
    """A programme on one database: one training organisation, and structures and people added as needed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with write_session(engine) as s:
            self.org = registry.add_training_org(s, name="Simplon.co", email="contact@simplon.example.fr")

    def structure(self, posts: int = 50) -> int:
        with write_session(self.engine) as s:
            n = next(_serial)
            return registry.add_structure(
                s, name=f"Médiathèque {n}", departement="86", posts=posts, email=f"mediatheque{n}@exemple.fr"
            )

    def candidate(self) -> int:
        n = next(_serial)
        with write_session(self.engine) as s:
            return registry.add_candidate(s, name=f"Camille Durand {n}", email=f"camille{n}@exemple.fr")

    def case(self, structure: int, to: str = "presented", candidate: int | None = None) -> int:
        """A case of a new candidate (or ``candidate``) taken to ``to``: presented, selected, contacted or in_post."""
        candidate = candidate or self.candidate()
        with write_session(self.engine) as s:
            case = service.present(s, structure, candidate, at=at(T0), policy=POLICY).id or 0
            steps: list[tuple[str, str, dict[str, Any]]] = [
                ("select", "2026-03-03T10:00", {}),
                ("contact_training_org", "2026-03-04T10:00", {"org": self.org}),
                ("sign_contract", "2026-03-05T10:00", CONTRACT),
                ("start_training", "2026-04-01T09:00", {}),
                ("complete_training", "2026-08-03T09:00", {}),
            ]
            count = {"presented": 0, "selected": 1, "contacted": 2, "in_post": 5}[to]
            for event, when, data in steps[:count]:
                service.fire(s, case, event, at=at(when), data=data, policy=POLICY)
        return case

    def due_cases(self, n: int) -> dict[int, str]:
        """``n`` cases with one deadline step due at SWEEP_AT each; return each case's expected step."""
        structure = self.structure(posts=max(1, n))
        expected: dict[int, str] = {}
        with write_session(self.engine) as s:
            for i in range(n):
                k = next(_serial)
                cid = registry.add_candidate(s, name=f"Candidat {k}", email=f"candidat{k}@exemple.fr")
                kind = i % 3
                presented = at(T0, days=(0, -5, -20)[kind])  # day-10 reminder / day-15 time-out / selected
                case = service.present(s, structure, cid, at=presented, policy=POLICY).id or 0
                if kind == 2:  # selected 16 days before the sweep: the préfet escalation is due
                    service.fire(s, case, "select", at=at(T0, days=-6), policy=POLICY)
                expected[case] = ("remind", "time_out", "escalate")[kind]
        return expected

    def in_post_cases(self, n: int) -> list[int]:
        """``n`` cases in post whose tranches 1 and 2 are due at PAY_AT."""
        structure = self.structure(posts=max(1, n))
        return [self.case(structure, "in_post") for _ in range(n)]
