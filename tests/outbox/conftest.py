"""Fixtures of the outbox tests: a real SMTP server, an outbox holding every kind of notification."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from outboxes import SmtpServer, free_port, give_addresses, walk_every_notification, walk_to_the_last_tranche
from sqlalchemy import Engine


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer(free_port()) as server:
        yield server


@pytest.fixture
def outbox(world: Any) -> Engine:
    walk_every_notification(world)
    give_addresses(world.engine)
    engine: Engine = world.engine
    return engine


@pytest.fixture
def every_kind(world: Any) -> Engine:
    """An outbox holding every kind of notification about cases, the last tranche included."""
    walk_every_notification(world)
    walk_to_the_last_tranche(world)
    give_addresses(world.engine)
    engine: Engine = world.engine
    return engine
