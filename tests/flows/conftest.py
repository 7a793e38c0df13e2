"""The Prefect test harness, shared by every flow test (and only by them).

One temporary Prefect server for the whole session (about 10 to 25 s to
start), telemetry off, and no flow-run heartbeats: each synchronous run would
otherwise wait about a second for its heartbeat thread (see flows/common.py).
The flows read their settings from the environment, as under a worker; the
``conum_env`` fixture points them at the test's database and folders.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# before Prefect is imported: no telemetry, and nothing written into the user's ~/.prefect
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="conum-prefect-home-"))

import pytest
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import Engine

from flows.common import without_heartbeats


@pytest.fixture(scope="session", autouse=True)
def prefect_harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=90), without_heartbeats():
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.prefect)


@dataclass
class Env:
    """Where the flows of one test read and write."""

    url: str
    engine: Engine
    mail_dir: Path
    payment_dir: Path


@pytest.fixture
def conum_env(db_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    env = Env(db_url, engine, tmp_path / "mail", tmp_path / "payments")
    monkeypatch.setenv("CONUM_DATABASE_URL", db_url)
    monkeypatch.setenv("CONUM_MAIL_DIR", str(env.mail_dir))
    monkeypatch.setenv("CONUM_PAYMENT_DIR", str(env.payment_dir))
    monkeypatch.delenv("CONUM_SMTP_HOST", raising=False)
    monkeypatch.delenv("CONUM_POLICY_FILE", raising=False)
    return env
