"""What an operator waits: ``advance-case`` in process against a trivial flow, and through a real worker.

    .venv/bin/python bench/bench_worker.py [--runs 20]
    .venv/bin/python bench/bench_worker.py --api http://127.0.0.1:4200/api --db URL [--burst 20]

Without ``--api`` it starts a Prefect server of its own (SQLite, a temporary
``PREFECT_HOME``, a free port), a Conum database (SQLite), the work pool
``conum`` with the ``advance-case`` deployment of prefect.yaml and one worker
(``PREFECT_WORKER_QUERY_SECONDS`` as ``make up`` sets it), and measures:

- *advance in process*: the median of ``--runs`` ``advance-case`` runs called
  in this process, against the median of as many runs of a flow that does
  nothing, alternated, heartbeats off for both (as in the simulation);
- *operator's wait*: from the creation of an ``advance-case`` flow run (what
  the UI's "Run" does) to the case changed in the database, polled every
  20 ms; the median of ``--runs``, one after the other. The creating call's
  own time (the API's answer to "Run") is given apart.

With ``--api`` and ``--db`` it measures the operator's wait against a layout
already running (``make up`` or ``make up-scaled``), and with ``--burst N`` the
time N actions created at once take to land (throughput of the workers). The
last line of stdout is one JSON object. It asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
QUERY_SECONDS = "1"  # as scripts/up.sh sets PREFECT_WORKER_QUERY_SECONDS


def log(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def seed(url: str, n: int) -> list[int]:
    """``n`` presented cases with nothing due (straight into the tables)."""
    from bench_floor import seed as seed_cases
    from sqlalchemy import text

    from states.db import get_engine, migrate

    migrate(url)
    engine = get_engine(url)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT coalesce(max(id), 0) FROM recruitment_case")).scalar() or 0
    if before:
        raise SystemExit("--db must name an empty Conum database (the bench adds its own cases)")
    seed_cases(engine, n, "presented", due_every=10**9)
    return list(range(1, n + 1))


def state_of(url: str, case_id: int) -> str:
    from sqlalchemy import text

    from states.db import get_engine

    with get_engine(url).connect() as conn:
        return str(conn.execute(text("SELECT state FROM recruitment_case WHERE id = :i"), {"i": case_id}).scalar())


def operator_wait(api: str, url: str, cases: list[int]) -> tuple[list[float], list[float]]:
    """Create one advance-case run at a time; time each from its creation until its case changed.

    Returns the waits and, apart, how long each creating call took (the UI's "Run" press: the API's answer).
    """
    from prefect.client.orchestration import SyncPrefectClient

    waits, calls = [], []
    with SyncPrefectClient(api) as client:
        deployment = client.read_deployment_by_name("advance-case/advance-case")
        for case_id in cases:
            start = time.perf_counter()
            client.create_flow_run_from_deployment(
                deployment.id, parameters={"case_id": case_id, "event": "select", "actor": "admin"}
            )
            created = time.perf_counter()
            calls.append(created - start)
            while state_of(url, case_id) != "selected":
                if time.perf_counter() - start > 120:
                    raise SystemExit(f"case {case_id} did not change within 120 s: is a worker running?")
                time.sleep(0.02)
            waits.append(time.perf_counter() - created)
            log(f"case {case_id}: {waits[-1]:.2f} s after its creation (the creating call: {calls[-1]:.2f} s)")
    return waits, calls


def burst(api: str, url: str, cases: list[int]) -> float:
    """Create runs for all ``cases`` at once; return the time until the last case changed."""
    from prefect.client.orchestration import SyncPrefectClient

    start = time.perf_counter()
    with SyncPrefectClient(api) as client:
        deployment = client.read_deployment_by_name("advance-case/advance-case")
        for case_id in cases:
            client.create_flow_run_from_deployment(
                deployment.id, parameters={"case_id": case_id, "event": "select", "actor": "admin"}
            )
    for case_id in cases:
        while state_of(url, case_id) != "selected":
            if time.perf_counter() - start > 600:
                raise SystemExit("the burst did not land within 10 minutes")
            time.sleep(0.1)
    return time.perf_counter() - start


def in_process(cases: list[int], runs: int) -> tuple[list[float], list[float]]:
    """Alternate advance-case and a flow that does nothing, in this process; return both series."""
    from prefect import flow

    from flows.advance import advance_case
    from flows.common import without_heartbeats

    @flow(name="trivial")
    def trivial() -> int:
        return 1

    advance, nothing = [], []
    at = datetime.now(UTC)
    with without_heartbeats():
        trivial()
        advance_case(cases[0], "select", at=at)  # first runs register the flows
        for case_id in cases[1 : runs + 1]:
            start = time.perf_counter()
            trivial()
            nothing.append(time.perf_counter() - start)
            start = time.perf_counter()
            advance_case(case_id, "select", at=at)
            advance.append(time.perf_counter() - start)
    return advance, nothing


def own_layout(folder: Path, runs: int, supervisor: bool = False) -> dict[str, Any]:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    url = f"sqlite:///{folder / 'conum.db'}"
    env = {
        **os.environ,
        "PREFECT_HOME": str(folder / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_EPHEMERAL_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_WORKER_QUERY_SECONDS": os.environ.get("PREFECT_WORKER_QUERY_SECONDS", QUERY_SECONDS),
        "CONUM_DATABASE_URL": url,
        "CONUM_MAIL_DIR": str(folder / "mail"),
        "CONUM_PAYMENT_DIR": str(folder / "payments"),
    }
    os.environ.update({k: env[k] for k in ("PREFECT_HOME", "PREFECT_API_URL", "CONUM_DATABASE_URL")})
    cases = seed(url, 2 * runs + 2)
    procs = []
    try:
        log(f"starting a Prefect server on port {port}")
        procs.append(
            subprocess.Popen(
                [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        until = time.monotonic() + 180
        while not healthy(api):
            if time.monotonic() > until:
                raise SystemExit("the Prefect server is not healthy after 180 s")
            time.sleep(0.5)
        log("advance-case in process, against a trivial flow")
        advance, nothing = in_process(cases[: runs + 1], runs)
        prefect = str(BIN / "prefect")
        if supervisor:  # Prefect's default template: a workspace supervisor, then the engine, per run
            subprocess.run([prefect, "work-pool", "create", "conum", "--type", "process"], env=env, check=True,
                           capture_output=True)  # fmt: skip
        else:  # as make up makes it: the engine started directly (flows/workpool.py)
            subprocess.run([sys.executable, "-m", "flows.workpool", "conum"], env=env, cwd=ROOT, check=True,
                           capture_output=True)  # fmt: skip
        subprocess.run([prefect, "--no-prompt", "deploy", "--name", "advance-case"], env=env, cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        log(f"a worker polling every {env['PREFECT_WORKER_QUERY_SECONDS']} s")
        with (folder / "worker.log").open("w") as worker_log:
            procs.append(
                subprocess.Popen(
                    [prefect, "worker", "start", "--pool", "conum", "--type", "process"],
                    env=env,
                    cwd=ROOT,
                    stdout=worker_log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        time.sleep(3)
        waits, calls = operator_wait(api, url, cases[runs + 1 : 2 * runs + 1])
    finally:
        for proc in reversed(procs):
            proc.send_signal(2)  # SIGINT: a worker ignores SIGTERM for a while
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
    return {
        "advance_median_s": statistics.median(advance),
        "trivial_median_s": statistics.median(nothing),
        "wait_median_s": statistics.median(waits),
        "wait_min_s": min(waits),
        "wait_max_s": max(waits),
        "create_median_s": statistics.median(calls),
        "create_max_s": max(calls),
        "runs": runs,
        "query_seconds": float(env["PREFECT_WORKER_QUERY_SECONDS"]),
        "supervisor": supervisor,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--api", help="an API server already running (make up, make up-scaled)")
    parser.add_argument("--db", help="with --api: the workers' (empty) Conum database")
    parser.add_argument("--burst", type=int, default=0, help="with --api: also time this many actions at once")
    parser.add_argument(
        "--supervisor", action="store_true", help="Prefect's default pool template (a supervisor process per run)"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    if args.api:
        if not args.db:
            parser.error("--api needs --db, the database the workers use")
        cases = seed(args.db, args.runs + args.burst)
        waits, calls = operator_wait(args.api, args.db, cases[: args.runs])
        figures: dict[str, Any] = {
            "wait_median_s": statistics.median(waits),
            "wait_min_s": min(waits),
            "wait_max_s": max(waits),
            "create_median_s": statistics.median(calls),
            "create_max_s": max(calls),
            "runs": args.runs,
        }
        if args.burst:
            figures["burst"] = args.burst
            figures["burst_s"] = burst(args.api, args.db, cases[args.runs :])
    else:
        folder = Path(tempfile.mkdtemp(prefix="conum-bench-worker-"))
        try:
            figures = own_layout(folder, args.runs, args.supervisor)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
