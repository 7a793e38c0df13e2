"""Each figure of the domain core beside its floor: the same statements as plain SQL, in the same run.

    .venv/bin/python bench/bench_floor.py transition [--db URL] [--n 1000]
    .venv/bin/python bench/bench_floor.py sweep --cases 100000
    .venv/bin/python bench/bench_floor.py pay --cases 100000

- *transition*: the ``select`` event through ``service.fire``, one write
  transaction each (the history row and the two outbox rows ``select`` queues
  included), against the same statements through the driver (``sqlite3`` or
  ``psycopg``, no SQLAlchemy): lock and read the case with its structure and
  candidate, write the case guarded by its version, insert the history row and
  the outbox rows, commit. SQLite by default, PostgreSQL with ``--db`` (a scratch database
  there, dropped at the end).
- *sweep*: ``--cases`` open cases of which a tenth have their day-10 reminder
  due; ``batch.sweep`` against the same reads, updates and inserts (case,
  history, outbox) as plain SQL in chunks of 500 with ``executemany``, on a copy
  of the same database.
- *pay*: ``--cases`` cases in post with three tranches each, the first due for a
  tenth of them; ``batch.pay`` against the same statements (tranche, case,
  history, two outbox rows) as plain SQL in chunks.

The programme is written straight into the tables (``executemany``), so that a
million cases seed in seconds. Peak memory is the process's peak resident set
(``ru_maxrss``), seeding included. The last line of stdout is one JSON object;
progress goes to stderr. It asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ["CONUM_CLOCK"] = "simulated"  # the bench dates its work in June 2026, whatever today is

from sqlalchemy import Engine, insert
from sqlalchemy.engine import make_url

from states import batch, service
from states.db import get_engine, migrate, write_session
from states.models import Candidate, Case, Structure, Tranche
from states.policy import Policy

#: The instant the sweep and the payment run act at (no daylight-saving change within 30 days of it).
AT = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
CHUNK = 500
SEED_CHUNK = 10_000
PER_STRUCTURE = 100


def log(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def scratch(url: str | None, folder: Path) -> Iterator[str]:
    """Yield the URL of an empty database: a SQLite file in ``folder``, or a scratch PostgreSQL database."""
    if url is None:
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    import psycopg

    server = make_url(url)
    name = f"conum_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.set(drivername="postgresql", database="postgres").render_as_string(False)) as admin:
        admin.autocommit = True
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            get_engine(server.set(database=name).render_as_string(hide_password=False)).dispose()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------- seeding, straight into the tables


def _chunks(n: int) -> Iterator[range]:
    for first in range(0, n, SEED_CHUNK):
        yield range(first, min(n, first + SEED_CHUNK))


def seed(engine: Engine, n: int, kind: str, due_every: int = 10) -> None:
    """Write ``n`` cases: ``presented`` (one in ``due_every`` with its day-10 reminder due at ``AT``, the others
    presented two days before) or ``in_post`` (three tranches each, the first due for one in ``due_every``)."""
    policy = Policy()
    with engine.begin() as conn:
        conn.execute(
            insert(Structure),
            [
                {"name": f"Structure {i}", "kind": "public", "departement": "86", "posts": PER_STRUCTURE}
                for i in range(-(-n // PER_STRUCTURE))
            ],
        )
        for ids in _chunks(n):
            conn.execute(insert(Candidate), [{"name": f"Candidat {i}", "email": f"c{i}@exemple.fr"} for i in ids])
    for ids in _chunks(n):
        rows = []
        for i in ids:
            due = i % due_every == 0
            if kind == "presented":
                start = AT - (timedelta(days=10, hours=1) if due else timedelta(days=2))
                rows.append(
                    {
                        "structure_id": i // PER_STRUCTURE + 1,
                        "candidate_id": i + 1,
                        "state": "candidate_presented",
                        "version": 1,
                        "clock_start": start,
                        "deadline_at": start + timedelta(days=15),
                        "due_at": start + timedelta(days=10),
                        "due_step": 0,
                        "last_at": start,
                        "presented_at": start,
                    }
                )
            else:
                start = AT - timedelta(days=300)
                rows.append(
                    {
                        "structure_id": i // PER_STRUCTURE + 1,
                        "candidate_id": i + 1,
                        "state": "in_post",
                        "version": 6,
                        "last_at": start + timedelta(days=120),
                        "presented_at": start - timedelta(days=30),
                        "selected_at": start - timedelta(days=29),
                        "contract_type": "CDI",
                        "contract_start": start.date(),
                        "salary_cents": 190_000,
                        "training_start": start.date(),
                        "in_post_on": (start + timedelta(days=120)).date(),
                        "funded_months": 24,
                        "subsidy_cents": 5_000_000,
                    }
                )
        with engine.begin() as conn:
            conn.execute(insert(Case), rows)
            if kind == "in_post":
                today = AT.date()
                conn.execute(
                    insert(Tranche),
                    [
                        {
                            "case_id": i + 1,
                            "number": number,
                            "amount_cents": amount,
                            "due_on": (today if i % due_every == 0 else today + timedelta(days=5))
                            if number == 1
                            else today + timedelta(days=365 * number),
                            "status": "scheduled",
                        }
                        for i in ids
                        for number, amount in ((1, 2_000_000), (2, 1_500_000), (3, 1_500_000))
                    ],
                )
    del policy


# ---------------------------------------------------------------- the plain-SQL floor


class Plain:
    """One connection of the driver itself, and the placeholders and locking of its database."""

    def __init__(self, url: str) -> None:
        u = make_url(url)
        self.sqlite = u.get_backend_name() == "sqlite"
        if self.sqlite:
            self.conn: Any = sqlite3.connect(u.database or "", isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=60000"):
                self.conn.execute(f"PRAGMA {pragma}")
            self.mark, self.lock, self.begin = "?", "", "BEGIN IMMEDIATE"
        else:
            import psycopg

            self.conn = psycopg.connect(u.set(drivername="postgresql").render_as_string(False), autocommit=True)
            self.mark, self.lock, self.begin = "%s", " FOR UPDATE OF c", "BEGIN"
        self.cur = self.conn.cursor()

    def sql(self, text: str) -> str:
        return text.replace("?", self.mark)

    def one(self, text: str, params: tuple[Any, ...]) -> Any:
        self.cur.execute(self.sql(text), params)
        return self.cur.fetchone()

    def all(self, text: str, params: tuple[Any, ...]) -> list[Any]:
        self.cur.execute(self.sql(text), params)
        return list(self.cur.fetchall())

    def run(self, text: str, params: tuple[Any, ...] = ()) -> int:
        self.cur.execute(self.sql(text), params)
        return int(self.cur.rowcount)

    def many(self, text: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self.cur.executemany(self.sql(text), rows)

    def close(self) -> None:
        self.conn.close()


_HISTORY = (
    "INSERT INTO history (case_id, event, from_state, to_state, actor, at, data, flow_run_id, prev_hash, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_OUTBOX = (
    "INSERT INTO outbox (case_id, kind, recipient, payload, status, attempts, created_at, next_attempt_at) "
    "VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)"
)
_LOAD = (
    "SELECT c.id, c.version, c.state, c.clock_start, c.last_at, c.history_hash, s.name, s.departement, k.name "
    "FROM recruitment_case c JOIN structure s ON s.id = c.structure_id JOIN candidate k ON k.id = c.candidate_id "
)


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, separators=(",", ":")).encode()).hexdigest()


def plain_select(db: Plain, case_id: int, at: datetime) -> None:
    """One ``select`` transition as plain SQL: lock and read, write the case on its version, the history row,
    the two outbox rows (the candidate and the structure are told)."""
    db.run(db.begin)
    row = db.one(_LOAD + "WHERE c.id = ?" + db.lock, (case_id,))
    digest = _hash(case_id, "select", at, row[5])
    done = db.run(
        "UPDATE recruitment_case SET state = 'selected', selected_at = ?, clock_start = ?, deadline_at = ?, "
        "due_at = ?, due_step = 0, escalation_level = 0, last_at = ?, history_hash = ?, version = version + 1 "
        "WHERE id = ? AND version = ?",
        (at, at, at + timedelta(days=15), at + timedelta(days=10), at, digest, case_id, row[1]),
    )
    assert done == 1
    db.run(_HISTORY, (case_id, "select", row[2], "selected", "admin", at, "{}", None, row[5], digest))
    payload = json.dumps(
        {"case_id": case_id, "structure_name": row[6], "departement": row[7], "name": row[8], "state": "selected"}
    )
    db.many(_OUTBOX, [(case_id, "selected", who, payload, at, at) for who in ("candidate", "structure")])
    db.run("COMMIT")


def plain_sweep(db: Plain, at: datetime) -> int:
    """The day-10 reminders as plain SQL: chunks of 500, ``executemany`` per statement, one commit per chunk."""
    done = 0
    while True:
        db.run(db.begin)
        rows = db.all(_LOAD + "WHERE c.due_at <= ? ORDER BY c.due_at, c.id LIMIT ?", (at, CHUNK))
        cases, history, outbox = [], [], []
        for case_id, version, state, clock_start, _last, prev, s_name, dep, k_name in rows:
            start = clock_start if isinstance(clock_start, datetime) else datetime.fromisoformat(clock_start)
            data = json.dumps({"step": 0, "level": 1, "due_at": str(start + timedelta(days=10))})
            digest = _hash(case_id, "remind", at, data, prev)
            cases.append((start + timedelta(days=15), at, digest, case_id, version))
            history.append((case_id, "remind", state, state, "system", at, data, None, prev, digest))
            payload = json.dumps({"case_id": case_id, "structure_name": s_name, "departement": dep, "name": k_name})
            outbox.append((case_id, "reminder", "structure", payload, at, at))
        db.many(
            "UPDATE recruitment_case SET due_step = 1, escalation_level = 1, due_at = ?, last_at = ?, "
            "history_hash = ?, version = version + 1 WHERE id = ? AND version = ?",
            cases,
        )
        db.many(_HISTORY, history)
        db.many(_OUTBOX, outbox)
        db.run("COMMIT")
        done += len(rows)
        if len(rows) < CHUNK:
            return done


def plain_pay(db: Plain, at: datetime) -> int:
    """The due tranches as plain SQL: chunks of 500, ``executemany`` per statement, one commit per chunk."""
    done = 0
    today = at.date()
    while True:
        db.run(db.begin)
        rows = db.all(
            "SELECT c.id, c.version, c.state, c.subsidy_cents, c.history_hash, s.name, s.departement, s.kind, k.name, "
            "t.id, t.number, t.amount_cents FROM recruitment_case c JOIN structure s ON s.id = c.structure_id "
            "JOIN candidate k ON k.id = c.candidate_id JOIN tranche t ON t.case_id = c.id "
            "WHERE c.state = 'in_post' AND t.status = 'scheduled' AND t.due_on <= ? ORDER BY c.id, t.number LIMIT ?",
            (today, CHUNK),
        )
        tranches, cases, history, outbox = [], [], [], []
        for case_id, version, state, subsidy, prev, s_name, dep, kind, k_name, t_id, number, amount in rows:
            data = json.dumps({"tranche_id": t_id, "number": number, "amount_cents": amount})
            digest = _hash(case_id, "pay_tranche", at, data, prev)
            tranches.append((at, t_id))
            cases.append((at, digest, case_id, version))
            history.append((case_id, "pay_tranche", state, state, "system", at, data, None, prev, digest))
            payload = {"case_id": case_id, "structure_name": s_name, "departement": dep, "name": k_name}
            payload.update(tranche_number=number, amount_cents=amount, subsidy_cents=subsidy)
            outbox.append((case_id, "tranche_paid", "structure", json.dumps(payload), at, at))
            payload.update(structure_kind=kind, tranche_id=t_id)
            outbox.append((case_id, "payment_order", "payment", json.dumps(payload), at, at))
        db.many("UPDATE tranche SET status = 'paid', paid_at = ? WHERE id = ? AND status = 'scheduled'", tranches)
        db.many(
            "UPDATE recruitment_case SET last_at = ?, history_hash = ?, version = version + 1 "
            "WHERE id = ? AND version = ?",
            cases,
        )
        db.many(_HISTORY, history)
        db.many(_OUTBOX, outbox)
        db.run("COMMIT")
        done += len(rows)
        if len(rows) < CHUNK:
            return done


# ---------------------------------------------------------------- the benches


#: the CPU time of this process of each ``timed`` call, in order (steadier than the wall time on a shared machine)
CPU: list[float] = []


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    CPU.append(time.process_time() - cpu)
    return time.perf_counter() - start, result


def bench_transition(url: str, n: int) -> dict[str, Any]:
    migrate(url)
    engine = get_engine(url)
    log(f"seeding {2 * n} presented cases")
    seed(engine, 2 * n, "presented", due_every=10**9)
    policy = Policy()

    def through_service() -> None:
        for case_id in range(1, n + 1):
            with write_session(engine) as s:
                service.fire(s, case_id, "select", at=AT, policy=policy)

    log(f"{n} select transitions through the service")
    service_s, _ = timed(through_service)
    db = Plain(url)
    log(f"{n} select transitions as plain SQL")
    floor_s, _ = timed(lambda: [plain_select(db, case_id, AT) for case_id in range(n + 1, 2 * n + 1)])
    db.close()
    engine.dispose()
    return {
        "n": n,
        "service_s": service_s,
        "floor_s": floor_s,
        "per_s": n / service_s,
        "service_cpu_s": CPU[-2],
        "floor_cpu_s": CPU[-1],
    }


def bench_batch(url: str, folder: Path, what: str, cases: int) -> dict[str, Any]:
    migrate(url)
    engine = get_engine(url)
    log(f"seeding {cases:,} cases ({what})")
    seed_s, _ = timed(lambda: seed(engine, cases, "presented" if what == "sweep" else "in_post"))
    engine.dispose()
    copy = folder / "floor.db"
    shutil.copy(folder / "bench.db", copy)
    db = Plain(f"sqlite:///{copy}")
    log(f"{what}: plain SQL")
    floor_s, floor_n = timed(lambda: plain_sweep(db, AT) if what == "sweep" else plain_pay(db, AT))
    db.close()
    log(f"{what}: the service")
    engine = get_engine(url)
    if what == "sweep":
        service_s, report = timed(lambda: batch.sweep(engine, AT, Policy()))
        service_n = len(report.steps)
    else:
        service_s, paid = timed(lambda: batch.pay(engine, AT, Policy()))
        service_n = paid.paid
    engine.dispose()
    return {
        "cases": cases,
        "seed_s": seed_s,
        "service_s": service_s,
        "service_n": service_n,
        "floor_s": floor_s,
        "floor_n": floor_n,
        "service_cpu_s": CPU[-1],
        "floor_cpu_s": CPU[-2],
        "peak_mib": peak_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("transition", "sweep", "pay"))
    parser.add_argument("--db", help="transition only: a PostgreSQL URL (a scratch database on that server)")
    parser.add_argument("--n", type=int, default=1000, help="transitions to time (default 1000)")
    parser.add_argument("--cases", type=int, default=100_000, help="cases in the database (sweep, pay)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="conum-bench-"))
    try:
        with scratch(args.db, folder) as url:
            if args.what == "transition":
                figures = bench_transition(url, args.n)
            else:
                figures = bench_batch(url, folder, args.what, args.cases)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    figures["what"] = args.what
    figures["backend"] = "postgresql" if args.db else "sqlite"
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
