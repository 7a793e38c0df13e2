"""Prefect's scaled layout, as ``make up-scaled`` starts it: every step once, whichever server or worker.

One layout for the module (``scripts/up-scaled.sh``): Prefect's database and
Conum's on the PostgreSQL server of 127.0.0.1:5432 (databases of their own,
dropped at the end), events and the background services' queue on the Redis of
127.0.0.1:6379 (an empty database number, flushed at the end), two API servers
on free ports, the background services apart, two workers of at most two runs
each, worker 1 polling server 1 and worker 2 server 2. ``scripts/down.sh``
stops exactly that.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from states import registry, service
from states.db import get_engine, write_session
from states.policy import Policy

ROOT = Path(__file__).resolve().parents[2]
PG = os.environ.get("CONUM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = ("127.0.0.1", 6379)
POLICY = Policy()
REMINDED, TIMED_OUT, IN_POST = 40, 20, 16  # cases of each kind: several chunks of 5 for each run
OPERATOR = 2  # cases with nothing due, for the operator's actions

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _ports() -> int:
    """A port P such that P and P + 1 are both free now (the two API servers)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return int(port)
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports")


def _empty_redis_db() -> int:
    import redis

    for db in range(15, 0, -1):
        client = redis.Redis(*REDIS, db=db)
        if client.dbsize() == 0 and client.set("conum-scale-test", "1", nx=True, ex=600):
            return db
    raise RuntimeError("no empty Redis database on 127.0.0.1:6379")


@dataclass
class Layout:
    apis: tuple[str, str]
    engine: Engine
    run: Path
    due: dict[str, list[int]]

    def client(self, i: int) -> Any:
        from prefect.client.orchestration import SyncPrefectClient

        return SyncPrefectClient(self.apis[i])

    def submit(self, i: int, deployment: str, **parameters: Any) -> str:
        with self.client(i) as c:
            dep = c.read_deployment_by_name(deployment)
            return str(c.create_flow_run_from_deployment(dep.id, parameters=parameters).id)

    def wait(self, runs: list[str], timeout: float = 150) -> dict[str, str]:
        """Wait for every run to end; return each one's final state."""
        until = time.monotonic() + timeout
        with self.client(0) as c:
            while True:
                states = {r: c.read_flow_run(r).state for r in runs}
                if all(s is not None and s.is_final() for s in states.values()) or time.monotonic() > until:
                    return {r: (s.type.value if s else "none") for r, s in states.items()}
                time.sleep(1)

    def worker_of(self, run: str) -> set[str]:
        """The workers that ran ``run``: both may try to take it, the server lets one (the other's is aborted)."""
        ran = set()
        for log in self.run.glob("prefect-worker-*.log"):
            lines = log.read_text(errors="replace")
            if f"submitting flow run '{run}'" in lines and f"Aborted submission of flow run '{run}'" not in lines:
                ran.add(log.stem)
        return ran


def _seed(engine: Engine) -> dict[str, list[int]]:
    """Cases whose reminder or time-out is due now, and cases in post whose first tranche is due."""
    now = datetime.now(UTC)
    due: dict[str, list[int]] = {"remind": [], "time_out": [], "pay": [], "operator": []}
    with write_session(engine) as s:
        org = registry.add_training_org(s, name="Simplon.co")
        structure = registry.add_structure(s, name="Médiathèque", departement="86", posts=1000)
        kinds = (
            ("remind", REMINDED, 11),
            ("time_out", TIMED_OUT, 16),
            ("pay", IN_POST, 200),
            ("operator", OPERATOR, 1),
        )
        for kind, n, ago in kinds:
            for i in range(n):
                cand = registry.add_candidate(s, name=f"Candidat {kind} {i}", email=f"{kind}{i}@exemple.fr")
                case = service.present(s, structure, cand, at=now - timedelta(days=ago), policy=POLICY)
                due[kind].append(case.id or 0)
    start = (now - timedelta(days=190)).date()
    contract = {"type": "CDD", "start": start.isoformat(), "end": (start + timedelta(days=730)).isoformat()}
    for case_id in due["pay"]:
        with write_session(engine) as s:
            for event, ago, data in (
                ("select", 199, {}),
                ("contact_training_org", 198, {"org": org}),
                ("sign_contract", 197, {**contract, "salary": "1900.00"}),
                ("start_training", 190, {}),
                ("complete_training", 60, {}),
            ):
                service.fire(s, case_id, event, at=now - timedelta(days=ago), data=data, policy=POLICY)
    return due


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    psycopg = pytest.importorskip("psycopg")
    server = make_url(PG)
    name = f"conum_scale_{uuid.uuid4().hex[:8]}"
    conum_url = server.set(database=name).render_as_string(hide_password=False)
    admin = psycopg.connect(server.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True)
    redis_db, port = _empty_redis_db(), _ports()
    run = tmp_path_factory.mktemp("scaled")
    env = {
        **os.environ,
        "CONUM_RUN_DIR": str(run),
        "CONUM_PG_SERVER": server.set(drivername="postgresql").render_as_string(hide_password=False).rsplit("/", 1)[0],
        "PREFECT_DB_NAME": f"{name}_prefect",
        "CONUM_DATABASE_URL": conum_url,
        "CONUM_REDIS_DB": str(redis_db),
        "PREFECT_PORT": str(port),
        "WORKERS": "2",
        "WORKER_LIMIT": "2",
        "WAIT": "20",
    }
    os.environ["PREFECT_HOME"] = str(run / "prefect")  # this process's Prefect client: nothing in ~/.prefect
    try:
        up = subprocess.run(["bash", "scripts/up-scaled.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        engine = get_engine(conum_url)
        yield Layout((f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port + 1}/api"), engine, run, _seed(engine))
    finally:
        subprocess.run(["bash", "scripts/down.sh"], cwd=ROOT, env=env, capture_output=True, timeout=180)
        get_engine(conum_url).dispose()
        for db in (name, f"{name}_prefect"):
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()
        import redis

        redis.Redis(*REDIS, db=redis_db).flushdb()


def _rows(engine: Engine, sql: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql)))


def test_sweeps_and_payment_runs_on_both_workers_do_each_step_and_tranche_once(layout: Layout) -> None:
    # two sweeps and two payment runs at once, through both API servers; each worker takes up to two of them
    # (which ones is the server's choice: one worker may take both sweeps and the other both payment runs)
    runs = {
        "sweep-1": layout.submit(0, "sweep-deadlines/sweep-deadlines", chunk=5),
        "pay-1": layout.submit(0, "pay-tranches/pay-tranches", chunk=5),
        "sweep-2": layout.submit(1, "sweep-deadlines/sweep-deadlines", chunk=5),
        "pay-2": layout.submit(1, "pay-tranches/pay-tranches", chunk=5),
    }
    states = layout.wait(list(runs.values()))
    assert set(states.values()) == {"COMPLETED"}, states
    workers = {what: layout.worker_of(run) for what, run in runs.items()}
    assert all(len(w) == 1 for w in workers.values()), workers  # each run was taken by one worker
    assert set().union(*workers.values()) == {"prefect-worker-1", "prefect-worker-2"}, workers  # both worked

    history = Counter(
        (case_id, event)
        for case_id, event in _rows(layout.engine, "SELECT case_id, event FROM history WHERE actor = 'system'")
    )
    assert {c for (c, e), n in history.items() if e == "remind" and n == 1} == set(layout.due["remind"])
    assert {c for (c, e), n in history.items() if e == "time_out" and n == 1} == set(layout.due["time_out"])
    assert {c for (c, e), n in history.items() if e == "pay_tranche" and n == 1} == set(layout.due["pay"])
    assert max(history.values()) == 1, history
    orders = Counter(
        row[0] for row in _rows(layout.engine, "SELECT payload->>'tranche_id' FROM outbox WHERE kind = 'payment_order'")
    )
    paid = _rows(layout.engine, "SELECT id FROM tranche WHERE status = 'paid'")
    assert len(paid) == IN_POST
    assert orders == Counter({str(t): 1 for (t,) in paid})


@pytest.mark.parametrize("server", [0, 1])
def test_an_operator_action_through_either_api_server_lands_once(layout: Layout, server: int) -> None:
    case_id = layout.due["operator"][server]
    run = layout.submit(server, "advance-case/advance-case", case_id=case_id, event="select", actor="structure:1")
    assert layout.wait([run]) == {run: "COMPLETED"}
    rows = _rows(layout.engine, f"SELECT flow_run_id FROM history WHERE case_id = {case_id} AND event = 'select'")
    assert rows == [(run,)]
    assert _rows(layout.engine, f"SELECT state FROM recruitment_case WHERE id = {case_id}") == [("selected",)]
