"""What the Prefect flows cost: one advance-case run, and a deadline sweep over many cases.

    .venv/bin/python bench/bench_flows.py [--runs 20] [--cases 10000]

Runs against ``PREFECT_API_URL`` when it is set (e.g. after ``make up``), else
against a temporary Prefect server started for the benchmark; the Conum
database is a fresh SQLite file in a temporary folder. Prints figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from sqlalchemy import Engine

from states import batch, registry, service
from states.clock import parse_instant, shift
from states.db import get_engine, migrate, write_session
from states.policy import Policy

T0 = parse_instant("2026-03-02T10:00")


def seed(engine: Engine, n: int, chunk: int = 1000) -> list[int]:
    """Present ``n`` candidates at ``T0`` (one structure per 50 cases), ``chunk`` per transaction."""
    policy, ids = Policy(), []
    for start in range(0, n, chunk):
        with write_session(engine) as s:
            structure = 0
            for i in range(start, min(n, start + chunk)):
                if i % 50 == 0 or not structure:
                    structure = registry.add_structure(s, name=f"Structure {i // 50}", departement="86", posts=50)
                cand = registry.add_candidate(s, name="Camille Durand", email=f"c{i}@exemple.fr")
                ids.append(service.present(s, structure, cand, at=T0, policy=policy).id or 0)
    return ids


@contextmanager
def prefect_server() -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL

    if os.environ.get("PREFECT_API_URL"):
        yield f"{os.environ['PREFECT_API_URL']} (given)"
        return
    from prefect.testing.utilities import prefect_test_harness

    t = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=120):
        yield f"temporary server {PREFECT_API_URL.value()} (started in {time.perf_counter() - t:.1f} s)"


def bench_advance(cases: list[int], runs: int, heartbeats: bool) -> list[float]:
    from flows.advance import advance_case
    from flows.common import without_heartbeats

    times = []
    with ExitStack() as stack:
        if not heartbeats:
            stack.enter_context(without_heartbeats())
        for case in cases[:runs]:
            t = time.perf_counter()
            advance_case(case, "select", at=shift(T0, 1))
            times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="advance-case runs per variant (default 20)")
    parser.add_argument("--cases", type=int, default=10_000, help="open cases the sweep finds due (default 10000)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="conum-bench-"))
    try:
        run(folder, args.runs, args.cases)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path, runs: int, n: int) -> None:
    url = f"sqlite:///{folder / 'advance.db'}"
    os.environ["CONUM_DATABASE_URL"] = url
    migrate(url)
    cases = seed(get_engine(url), 2 * runs + 1)
    t = time.perf_counter()
    import prefect  # noqa: F401

    print(f"import prefect: {time.perf_counter() - t:.2f} s")
    with prefect_server() as where:
        print(f"Prefect: {where}")
        from flows.advance import advance_case
        from flows.common import without_heartbeats
        from flows.sweep import sweep_deadlines

        t = time.perf_counter()
        with without_heartbeats():
            advance_case(cases[-1], "select", at=shift(T0, 1))  # first run: registers the flow
        print(f"advance-case, first run: {time.perf_counter() - t:.3f} s")
        for heartbeats, chosen in ((True, cases[:runs]), (False, cases[runs : 2 * runs])):
            times = bench_advance(chosen, runs, heartbeats)
            print(
                f"advance-case, heartbeats {'on ' if heartbeats else 'off'}: median {statistics.median(times):.3f} s, "
                f"min {min(times):.3f} s, max {max(times):.3f} s over {len(times)} runs"
            )

        big = folder / "sweep.db"
        url = f"sqlite:///{big}"
        migrate(url)
        t = time.perf_counter()
        seed(get_engine(url), n)
        print(f"seeded {n} presented cases in {time.perf_counter() - t:.1f} s")
        get_engine(url).dispose()
        shutil.copy(big, folder / "core.db")
        at = shift(T0, 11)  # every case has its day-10 reminder due
        os.environ["CONUM_DATABASE_URL"] = url
        t = time.perf_counter()
        with without_heartbeats():
            counts = sweep_deadlines(at=at)
        flow_s = time.perf_counter() - t
        print(f"sweep-deadlines flow over {n} due cases: {flow_s:.2f} s ({n / flow_s:,.0f} cases/s), {counts}")
        core = get_engine(f"sqlite:///{folder / 'core.db'}")
        t = time.perf_counter()
        report = batch.sweep(core, at, Policy())
        core_s = time.perf_counter() - t
        print(
            f"states.batch.sweep alone, same cases: {core_s:.2f} s ({n / core_s:,.0f} cases/s), "
            f"{report.reminded} reminded; the flow adds {flow_s - core_s:.2f} s"
        )


if __name__ == "__main__":
    main()
