"""The small programme the simulation tests read: run once per session, through the real service, no Prefect."""

from __future__ import annotations

import pytest
from simulated import run

from states.simulation import Outcome


@pytest.fixture(scope="session")
def first(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """A 60-post programme of seed 7, delivered by its own process; tests read it and never change it."""
    return run(tmp_path_factory.mktemp("first"))
