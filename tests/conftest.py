"""Shared fixtures: a migrated temporary database and small factories.

Domain tests use these and never import Prefect.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# The tests date their actions in the programme's future: lift the real clock's bound (and only that),
# for this process and the `conum` processes the tests start.
os.environ["CONUM_CLOCK"] = "simulated"

import pytest
from helpers import fresh_database
from sqlalchemy import Engine

from states import registry, service
from states.clock import parse_instant
from states.db import get_engine, write_session
from states.policy import Policy

PG_URL = os.environ.get("CONUM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite database for each test (a copy of one migrated once per run)."""
    return fresh_database(tmp_path)


@pytest.fixture
def engine(db_url: str) -> Engine:
    return get_engine(db_url)


@pytest.fixture
def policy() -> Policy:
    return Policy()


class World:
    """A small programme on a database: add structures, candidates and cases in one line each."""

    def __init__(self, engine: Engine, policy: Policy) -> None:
        self.engine, self.policy = engine, policy
        with write_session(engine) as s:
            self.org = registry.add_training_org(s, name="Simplon.co")

    def structure(self, posts: int = 1, departement: str = "33", kind: str = "public") -> int:
        with write_session(self.engine) as s:
            return registry.add_structure(s, name="Médiathèque", departement=departement, posts=posts, kind=kind)

    def candidate(self) -> int:
        with write_session(self.engine) as s:
            return registry.add_candidate(s, name="Camille Durand", email="camille@exemple.fr")

    def present(self, structure: int, candidate: int, at: str = "2026-03-01T10:00") -> int:
        with write_session(self.engine) as s:
            return service.present(s, structure, candidate, at=parse_instant(at), policy=self.policy).id or 0

    def fire(self, case: int, event: str, at: str, actor: str = "admin", **data: str) -> dict:
        from states.views import case_view

        with write_session(self.engine) as s:
            c = service.fire(s, case, event, actor=actor, at=parse_instant(at), data=data, policy=self.policy)
            return case_view(s, c)

    def signed(
        self,
        structure: int | None = None,
        candidate: int | None = None,
        start: str = "2026-04-01",
        end: str | None = "2028-03-31",
        kind: str = "CDD",
    ) -> int:
        """Return a case walked up to contract_signed."""
        structure = structure or self.structure()
        candidate = candidate or self.candidate()
        case = self.present(structure, candidate, at="2026-02-23T10:00")
        self.fire(case, "select", "2026-02-24T10:00")
        self.fire(case, "contact_training_org", "2026-02-25T10:00", org=str(self.org))
        data = {"type": kind, "start": start, "salary": "1900.00"}
        if end:
            data["end"] = end
        self.fire(case, "sign_contract", "2026-03-04T10:00", **data)
        return case


@pytest.fixture
def world(engine: Engine, policy: Policy) -> Iterator[World]:
    yield World(engine, policy)
