"""Benchmark of the domain core: transitions, presentations, the sweep and the payment run.

    .venv/bin/python bench/bench_core.py [--cases N] [--db URL]

It builds a programme of N open cases with the Python API and measures, on
SQLite (a temporary file) by default or on PostgreSQL with ``--db``:

- the time of one ``service.fire`` transition (median over 1,000 ``select``
  events, each in its own transaction as an operator's command runs), and the
  median of every other event of the main path;
- cases presented per second (one transaction per case);
- one sweep over the N open cases, all due (each gets its reminder);
- one payment run over at least N due tranches (N/3 cases in post, three
  tranches each, paid at the end of the funded period);
- the start-up of the ``conum`` command and the peak resident memory.

With ``--db`` the URL names a PostgreSQL server and a database to connect to
(e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``): the bench
creates a scratch database next to it, works there and drops it, so the given
database is left alone. It prints figures and ratios and asserts nothing.

Each figure is given as wall time and as the CPU time of this process: on a
shared machine the wall time moves with the load of other jobs, the CPU time
much less (on PostgreSQL it leaves out the server's own work).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from states import batch, registry, service
from states.clock import parse_instant
from states.db import get_engine, migrate, write_session
from states.policy import Policy

T0 = "2026-03-02T10:00"  # presentations (Europe/Paris)
CONTRACT = {"type": "CDD", "start": "2026-05-04", "end": "2028-05-03", "salary": "1900.00"}
PAY_AT = "2028-05-03T12:00"  # last day of the funded period: the three tranches are due
POSTS = 100  # posts per structure: one structure per hundred cases


def log(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


@contextmanager
def scratch_database(url: str | None) -> Iterator[str]:
    """Yield the URL of an empty database: a temporary SQLite file, or a scratch PostgreSQL database."""
    if url is None:
        with tempfile.TemporaryDirectory(prefix="conum-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    import psycopg

    server = make_url(url)
    name = f"conum_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(server.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    scratch = server.set(database=name).render_as_string(hide_password=False)
    try:
        yield scratch
    finally:
        get_engine(scratch).dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Run ``fn``; return its wall time, its CPU time (this process) and its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def cli_start_up(url: str, runs: int = 5) -> float:
    """Median wall time of ``conum list --json`` on the bench database (a read: start-up dominates)."""
    conum = Path(sys.executable).with_name("conum")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONUM_")}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [str(conum), "list", "--state", "tranches_paid", "--departement", "01", "--db", url, "--json"],
            check=True,
            capture_output=True,
            env=env,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(url: str, cases: int, fires: int) -> dict[str, Any]:
    policy = Policy()
    migrate(url)
    engine: Engine = get_engine(url)
    figures: dict[str, Any] = {}

    # ------------------------------------------------------------ the pool
    log(f"adding {cases} candidates and {math.ceil(cases / POSTS)} structures")
    with write_session(engine) as s:
        org = registry.add_training_org(s, name="Simplon.co")
        structures = [
            registry.add_structure(s, name=f"Structure {i}", departement="86", posts=POSTS)
            for i in range(math.ceil(cases / POSTS))
        ]
    candidates: list[int] = []
    for first in range(0, cases, 1000):
        with write_session(engine) as s:
            candidates += [
                registry.add_candidate(s, name=f"Candidat {i}", email=f"candidat{i}@exemple.fr")
                for i in range(first, min(cases, first + 1000))
            ]

    # ------------------------------------------------------------ presentations
    log(f"presenting {cases} candidates, one transaction each")
    at = parse_instant(T0)
    ids: list[int] = []
    each: list[float] = []
    cpu = time.process_time()
    for i, cid in enumerate(candidates):
        start = time.perf_counter()
        with write_session(engine) as s:
            ids.append(service.present(s, structures[i // POSTS], cid, at=at, policy=policy).id or 0)
        each.append(time.perf_counter() - start)
    figures["present_per_s"] = cases / sum(each)
    figures["present_cpu_per_s"] = cases / (time.process_time() - cpu)
    figures["present_median"] = statistics.median(each)

    # ------------------------------------------------------------ the sweep: every case has its reminder due
    sweep_at = at + timedelta(days=10, hours=1)
    log(f"sweeping {cases} due cases")
    seconds, cpu_s, report = timed(lambda: batch.sweep(engine, sweep_at, policy))
    figures["sweep_s"], figures["sweep_cpu_s"], figures["sweep_acts"] = seconds, cpu_s, len(report.steps)

    # ------------------------------------------------------------ transitions, one transaction each
    in_post = ids[: math.ceil(cases / 3)]
    log(f"walking {len(in_post)} cases to in_post, one transaction per event")
    path: list[tuple[str, datetime, dict[str, Any]]] = [
        ("select", sweep_at + timedelta(hours=1), {}),
        ("contact_training_org", sweep_at + timedelta(hours=2), {"org": org}),
        ("sign_contract", sweep_at + timedelta(hours=3), CONTRACT),
        ("start_training", parse_instant("2026-05-04T09:00"), {}),
        ("complete_training", parse_instant("2026-09-01T09:00"), {}),
    ]
    fire_times: dict[str, list[float]] = {e: [] for e, _, _ in path}
    fire_cpu: dict[str, list[float]] = {e: [] for e, _, _ in path}
    tx_times: dict[str, list[float]] = {e: [] for e, _, _ in path}
    for event, when, data in path:
        for case in in_post:
            begin = time.perf_counter()
            with write_session(engine) as s:
                start, cpu = time.perf_counter(), time.process_time()
                service.fire(s, case, event, at=when, data=data, policy=policy)
                fire_cpu[event].append(time.process_time() - cpu)
                fire_times[event].append(time.perf_counter() - start)
            tx_times[event].append(time.perf_counter() - begin)
    figures["fire_median"] = statistics.median(fire_times["select"][:fires])
    figures["fire_cpu_median"] = statistics.median(fire_cpu["select"][:fires])
    figures["fire_tx_median"] = statistics.median(tx_times["select"][:fires])
    figures["fire_n"] = min(fires, len(fire_times["select"]))
    figures["per_event"] = {
        e: (statistics.median(fire_times[e]), statistics.median(fire_cpu[e]), statistics.median(tx_times[e]))
        for e in fire_times
    }

    # ------------------------------------------------------------ the payment run
    log(f"paying the tranches of {len(in_post)} cases")
    seconds, cpu_s, paid = timed(lambda: batch.pay(engine, parse_instant(PAY_AT), policy))
    figures["pay_s"], figures["pay_cpu_s"] = seconds, cpu_s
    figures["pay_tranches"], figures["pay_cents"] = paid.paid, paid.amount_cents

    log("timing the conum command's start-up")
    figures["cli_s"] = cli_start_up(url)
    engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="open cases to sweep and tranches to pay")
    parser.add_argument("--fires", type=int, default=1_000, help="select transitions the median is taken over")
    parser.add_argument("--db", help="a PostgreSQL URL: the bench works in a scratch database on that server")
    args = parser.parse_args()
    if args.db and make_url(args.db).get_backend_name() != "postgresql":
        parser.error("--db takes a PostgreSQL URL; without it the bench runs on a temporary SQLite file")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still drop the scratch database

    backend = "PostgreSQL" if args.db else "SQLite (temporary file, WAL)"
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with scratch_database(args.db) as url:
        f = run(url, args.cases, args.fires)
    total = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    fire, fire_cpu = f["fire_median"], f["fire_cpu_median"]
    acts, tranches = max(1, f["sweep_acts"]), max(1, f["pay_tranches"])
    print(f"conum core benchmark — {backend}, {args.cases} cases")
    print(
        f"machine: {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, "
        f"load average {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )
    print()
    print(
        f"service.fire (select), median of {f['fire_n']}: {ms(fire)} wall, {ms(fire_cpu)} CPU "
        f"({ms(f['fire_tx_median'])} with its transaction)"
    )
    print("every event of the main path, median over all the cases walked:")
    for event, (alone, cpu, tx) in f["per_event"].items():
        print(f"  {event:<22} {ms(alone):>10} wall {ms(cpu):>10} CPU {ms(tx):>10} with its transaction")
    print(
        f"presented:    {f['present_per_s']:,.0f} cases/s wall, {f['present_cpu_per_s']:,.0f} cases/s CPU "
        f"(median {ms(f['present_median'])} a case, one transaction each)"
    )
    print(
        f"sweep:        {f['sweep_acts']:,} due cases in {f['sweep_s']:.2f} s wall "
        f"({f['sweep_acts'] / f['sweep_s']:,.0f}"
        f" cases/s), {f['sweep_cpu_s']:.2f} s CPU ({f['sweep_acts'] / f['sweep_cpu_s']:,.0f} cases/s)"
    )
    print(
        f"pay:          {f['pay_tranches']:,} due tranches in {f['pay_s']:.2f} s wall "
        f"({f['pay_tranches'] / f['pay_s']:,.0f} tranches/s), {f['pay_cpu_s']:.2f} s CPU "
        f"({f['pay_tranches'] / f['pay_cpu_s']:,.0f} tranches/s), {f['pay_cents'] / 100:,.2f} €"
    )
    print(f"conum start-up (a read), median of 5: {f['cli_s']:.2f} s")
    print(f"peak RSS:     {rss:,.0f} MiB")
    print(f"whole run:    {total:.0f} s")
    print()
    print("ratios (CPU time, steadier than wall time on a shared machine)")
    print(f"  sweep, per case / one fire (select):       {f['sweep_cpu_s'] / acts / fire_cpu:.2f}")
    print(f"  pay, per tranche / one fire (select):      {f['pay_cpu_s'] / tranches / fire_cpu:.2f}")
    print(f"  present, per case / one fire (select):     {1 / f['present_cpu_per_s'] / fire_cpu:.2f}")
    print(f"  sign_contract / select:                    {f['per_event']['sign_contract'][1] / fire_cpu:.2f}")
    print(f"  conum start-up (wall) / one fire (wall):   {f['cli_s'] / fire:,.0f}")


if __name__ == "__main__":
    main()
