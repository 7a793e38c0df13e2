"""Applications on a database: submit one and walk it through the table in one line each."""

from __future__ import annotations

from itertools import count
from typing import Any

from sqlalchemy import Engine

from states.applications import service
from states.applications.views import application_view
from states.clock import parse_instant
from states.db import write_session
from states.policy import Policy

VALID_SIRETS = ("73282932000074", "44306184100047", "55210055400013", "35600000000001")


def siret(n: int) -> str:
    """Return the ``n``-th of an endless list of valid SIRETs (Luhn keys computed)."""
    base = f"{100000000 + n:09d}0001"
    for key in range(10):
        candidate = base + str(key)
        total = 0
        for i, ch in enumerate(reversed(candidate)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return candidate
    raise AssertionError("no key")


class Apps:
    """A few applications on a database, fired through the service as the CLI does."""

    def __init__(self, engine: Engine, policy: Policy) -> None:
        self.engine, self.policy, self.n = engine, policy, count(1)

    def submit(self, posts: int = 3, departement: str = "33", at: str = "2026-01-05T10:00", **extra: Any) -> int:
        data = {"name": "Mairie", "siret": siret(next(self.n)), "kind": "public", "departement": departement}
        data.update({"posts": posts, **extra})
        with write_session(self.engine) as s:
            app, _ = service.submit(s, data, at=parse_instant(at), policy=self.policy)
            return app.id or 0

    def fire(self, app: int, event: str, at: str, actor: str = "admin", **data: Any) -> dict[str, Any]:
        with write_session(self.engine) as s:
            fired = service.fire(s, app, event, actor=actor, at=parse_instant(at), data=data, policy=self.policy)
            return application_view(s, *service.load(s, fired.id or 0))

    def validated(self, posts: int = 3, validate: int | None = None, departement: str = "33") -> int:
        app = self.submit(posts=posts, departement=departement)
        self.fire(app, "give_opinion", "2026-01-10T10:00", actor=f"prefet:{departement}", opinion="favourable")
        self.fire(app, "validate", "2026-01-20T10:00", posts=str(validate or posts), committee="COSELEC-1")
        return app

    def signed(self, posts: int = 3, validate: int | None = None) -> dict[str, Any]:
        app = self.validated(posts, validate)
        return self.fire(app, "sign_convention", "2026-01-25T10:00", start="2026-02-01")
