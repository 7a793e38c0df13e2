"""``python -m reliability``: every campaign on every backend, one table, written to docs/reliability.md.

python -m reliability                      # the full campaigns (make reliability)
python -m reliability --short              # the same code with small counts (what the tests run)
python -m reliability --only races --backend sqlite
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reliability.backends import BACKENDS
from reliability.campaigns import ROOT, Row, faults, kills, races

FULL: dict[str, Any] = {
    "races": {"count": 504, "processes": 6},
    "kills": {"counts": {"simulate": 2, "sweep": 50, "pay": 50, "delivery": 48}},
    "faults": {"count": 252},
    "fuzz": {
        "sqlite": {"examples": {"argv": 2400, "set": 2400, "at": 1500, "policy": 1000, "csv": 800}, "processes": 20},
        "postgresql": {"examples": {"argv": 900, "set": 900, "at": 500, "policy": 400, "csv": 300}, "processes": 10},
    },
}
SHORT: dict[str, Any] = {
    "races": {"count": 6, "processes": 3},
    "kills": {
        "counts": {"sweep": 2, "pay": 2, "delivery": 2, "simulate": 1},
        "simulate_to_end": False,
        "simulate_window": (2.0, 4.0),
    },
    "faults": {"count": 6},
    "fuzz": {
        "sqlite": {"examples": {"argv": 25, "set": 25, "at": 25, "policy": 25, "csv": 25}, "processes": 2},
        "postgresql": {"examples": {"argv": 10, "set": 10, "at": 10, "policy": 10, "csv": 10}, "processes": 1},
    },
}
CAMPAIGNS = ("fuzz", "races", "faults", "kills")
HEADER = ("campaign", "backend", "tried", "lost", "doubled", "half-written", "tracebacks")


def run(campaign: str, backend: str, plan: dict[str, Any], parsers: list[str] | None = None) -> Row:
    from reliability.fuzz import fuzz

    if campaign == "fuzz":
        given = plan["fuzz"][backend]
        if not parsers:
            return fuzz(backend, **given)
        examples = {k: v for k, v in given["examples"].items() if k in parsers}
        row = fuzz(backend, examples, processes=0)
        row.campaign = f"fuzz ({', '.join(parsers)})"
        return row
    if campaign == "races":
        return races(backend, **plan["races"])
    if campaign == "faults":
        return faults(backend, **plan["faults"])
    return kills(backend, **plan["kills"])


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for f in rows:
        lines.append(
            f"| {f['campaign']} | {f['backend']} | {f['tried']:,} | {f['lost']} | {f['doubled']} | "
            f"{f['half_written']} | {f['tracebacks']} |"
        )
    total = [sum(f[k] for f in rows) for k in ("tried", "lost", "doubled", "half_written", "tracebacks")]
    lines.append(
        f"| **all** | | **{total[0]:,}** | **{total[1]}** | **{total[2]}** | **{total[3]}** | **{total[4]}** |"
    )
    return "\n".join(lines)


def details(rows: list[dict[str, Any]]) -> str:
    out = []
    for f in rows:
        notes = ", ".join(f"{k}: {v}" for k, v in sorted(f["notes"].items())) or "none"
        out.append(f"- **{f['campaign']} × {f['backend']}** ({f['seconds']:.0f} s): {notes}")
        out += [f"  - `{e[:400]}`".replace(str(ROOT), ".") for e in f.get("examples", [])]
    return "\n".join(out)


@contextlib.contextmanager
def prefect_server(folder: Path) -> Iterator[None]:
    """A Prefect server of the campaign's own (ports 4410-4419), for ``conum simulate``; stopped after."""
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    port = next(p for p in range(4410, 4420) if _free(p))
    env = {**os.environ, "PREFECT_HOME": str(folder), "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    try:
        yield
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def in_parallel(
    campaigns: list[str], backends: list[str], jobs: int, short: bool, folder: Path, parsers: list[str] | None = None
) -> list[Any]:
    """Run each campaign × backend in a process of its own, ``jobs`` at a time; return their figures."""
    pending = [(c, b) for c in campaigns for b in backends]
    running: list[tuple[subprocess.Popen[bytes], Path]] = []
    found: list[Any] = []
    while pending or running:
        while pending and len(running) < jobs:
            campaign, backend = pending.pop(0)
            out = folder / f"{campaign}-{backend}.json"
            argv = [sys.executable, "-m", "reliability", "--only", campaign, "--backend", backend, "--no-write"]
            argv += ["--json", str(out), *(["--short"] if short else []), *(["--parsers", *parsers] if parsers else [])]
            running.append((subprocess.Popen(argv, stdout=subprocess.DEVNULL, cwd=ROOT), out))
        time.sleep(1)
        for proc, out in [r for r in running if r[0].poll() is not None]:
            running.remove((proc, out))
            found += json.loads(out.read_text()) if out.exists() else []
    order = {c: i for i, c in enumerate(CAMPAIGNS)}
    return sorted(found, key=lambda f: (order[f["campaign"].split()[0]], BACKENDS.index(f["backend"])))


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait_for_prefect(timeout: float = 300) -> None:
    url = os.environ.get("PREFECT_API_URL")
    end = time.monotonic() + timeout
    while url and time.monotonic() < end:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(1)


DOC = """# Reliability: fault campaigns

`make reliability` (`python -m reliability`) tries the system the way a careless or hostile user, a
crash or a failing database would, on SQLite and on PostgreSQL (a database of its own for each
campaign, created on the server and dropped afterwards), and checks after every trial, on the
database itself:

- **lost**: a transition a process acknowledged (exit 0, or a step a batch run reported) that is not in
  the history; a notification not sent once the delivery ran again;
- **doubled**: a transition recorded twice from the same state, a deadline step twice, a tranche paid
  twice, a payment order or notification queued twice, a candidate presented twice to one structure or
  under two contracts, a structure over its posts;
- **half-written**: a case whose state is not its last history row's target, whose version is not its
  number of history rows, whose hash chain is broken (`conum verify`, also run as a process at the end
  of each campaign); a paid tranche without its history row or payment order, or the other way round;
  a refused command that changed the database; a killed `conum simulate` that left a process behind;
- **tracebacks**: a traceback on the stderr of any process, or an exception out of a command.

Last run: {when}, {seconds:.0f} s in all, on a 2-core machine (load average {load} at the start).

{table}

## The campaigns

- **races**: two worker processes (`reliability/worker.py`, each running the `conum` entry point
  in-process) fire competing commands at the same instant: `select` against `decline`, the same `select`
  twice, the same candidate presented twice to one structure, two signings for a structure's last post,
  two signings of one candidate, `cancel` against `sign_contract`. Then real `conum` processes race:
  `advance` against `advance`, two `conum sweep`, two `conum pay`.
- **kills**: SIGKILL at a random moment within the work of a sweep, a payment run and a delivery of
  the outbox (one in eight a `conum sweep` or `conum pay` process from its start), then the same run
  again to its end: each due step and tranche must then be done exactly once, each notification sent.
  The moment is drawn within the median time of the last whole runs of the same kind, so that most
  kills land while the work runs, on a fast machine or a loaded one; the notes count those that landed
  ("killed while running", "conum processes killed") apart from those that came after the run had
  answered ("done before the kill"), which are still checked.
  `conum simulate` is killed too: no process of it may survive, its database holds nothing
  half-written, and it starts again on a new database (the last one of each backend runs to its end
  and its reconciliation must be right; a whole run takes minutes here).
- **faults**: database faults injected into the worker process during `advance` (select,
  sign_contract, cancel), `present`, `sweep`, `pay` and the delivery: the connection lost under a
  random statement (PostgreSQL: `pg_terminate_backend`; SQLite: the driver's connection closed), a
  lock time-out as the driver reports it (psycopg `LockNotAvailable`, sqlite3 `database is locked`)
  at a random statement, the connection lost at the commit. SQLAlchemy event listeners installed by
  the worker only when `CONUM_FAULTS=1`; the production code has no hook. After each fault the same
  command runs again, and must succeed or be refused because the first one did commit.
- **fuzz**: hypothesis generates command lines (any words, options and text: control characters,
  markup, format strings, SQL, lone surrogates), event data (`--set KEY=VALUE` on every event),
  instants (`--at`) and policy files (TOML over the policy's keys, and any text); each runs through the
  `conum` entry point in-process, a sample as real processes. Every refusal must be one line on stderr
  with a documented exit code, nothing on stdout, and the database unchanged. {csv}

## Notes of the last run

{details}

## Rerun

    make reliability                                   # everything, about {minutes} minutes here
    .venv/bin/python -m reliability --only kills --backend postgresql
    .venv/bin/python -m reliability --short --no-write  # the short version the tests run

PostgreSQL is `CONUM_TEST_PG_URL` (default `postgresql+psycopg://postgres@127.0.0.1:5432/test`); the
campaigns never skip it. `tests/test_reliability.py` runs every campaign with small counts.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="small counts (the tests' version)")
    parser.add_argument("--only", choices=CAMPAIGNS, action="append", help="only this campaign (repeatable)")
    parser.add_argument("--backend", choices=BACKENDS, action="append", help="only this backend (repeatable)")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/reliability.md")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--jobs", type=int, default=1, help="run the campaigns in this many processes at once")
    parser.add_argument("--parsers", nargs="+", help="fuzz only these parsers (argv, set, at, policy, csv)")
    parser.add_argument("--minutes", type=float, help="stop every campaign after this many minutes")
    parser.add_argument("--merge", type=Path, nargs="+", help="run nothing: write the table of these JSON files")
    args = parser.parse_args(argv)
    os.environ["CONUM_CLOCK"] = "simulated"
    if args.minutes:
        os.environ["RELIABILITY_UNTIL"] = str(time.time() + args.minutes * 60)
    plan = SHORT if args.short else FULL
    chosen = [c for c in CAMPAIGNS if not args.only or c in args.only]
    backends = args.backend or list(BACKENDS)
    rows: list[dict[str, Any]] = []
    started, load = time.monotonic(), os.getloadavg()[0]
    if args.merge:
        for path in args.merge:
            rows += json.loads(path.read_text())
        order = {c: i for i, c in enumerate(CAMPAIGNS)}
        rows.sort(key=lambda f: (order[f["campaign"].split()[0]], f["campaign"], BACKENDS.index(f["backend"])))
        chosen = []
    prefect = Path(tempfile.mkdtemp(prefix="conum-prefect-"))
    server = prefect_server(prefect) if "kills" in chosen and not args.short else contextlib.nullcontext()
    with server:
        if args.jobs > 1:
            rows += in_parallel(chosen, backends, args.jobs, args.short, prefect, args.parsers)
            chosen = []
        for campaign in chosen:
            if campaign == "kills":
                wait_for_prefect()
            for backend in backends:
                row = run(campaign, backend, plan, args.parsers)
                rows.append({**row.figures(), "examples": row.examples()})
                print(f"{campaign} × {backend}: {json.dumps(row.figures(), ensure_ascii=False)}", file=sys.stderr)
    shutil.rmtree(prefect, ignore_errors=True)
    seconds = time.monotonic() - started
    if args.merge:
        seconds = sum(f["seconds"] for f in rows)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    if not args.no_write and not args.short:
        from reliability.fuzz import csv_note

        text = DOC.format(
            when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            seconds=seconds,
            load=f"{load:.1f}",
            minutes=max(1, round(seconds / 60)),
            table=table(rows),
            details=details(rows),
            csv=csv_note(),
        )
        (ROOT / "docs" / "reliability.md").write_text(text, encoding="utf-8")
    bad = any(f[k] for f in rows for k in ("lost", "doubled", "half_written", "tracebacks"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
