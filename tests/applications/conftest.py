"""The fixture of the applications' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from applying import Apps
from sqlalchemy import Engine

from states.policy import Policy


@pytest.fixture
def apps(engine: Engine, policy: Policy) -> Iterator[Apps]:
    yield Apps(engine, policy)
