"""``make bench``: every figure beside its floor or reference, measured in the same run; bench/results.md.

    .venv/bin/python bench/run.py [--full] [--quick] [--only transition,sweep,pay,worker,simulation]

Runs each bench of this folder in a process of its own (so that each peak
memory is its own), prints each figure with its floor and their ratio as it
comes, checks each against its target, and writes ``bench/results.md``
(machine, versions, load, figures, ratios, PASS or FAIL). ``--full`` adds the
sweep and the payment run at 1,000,000 cases (about ten more minutes here);
``--quick`` is a smaller run to check the bench itself. It asserts nothing:
the targets are reported, not enforced.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PG = os.environ.get("CONUM_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class Results:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str, str]] = []
        self.notes: list[str] = []

    def add(self, figure: str, value: str, reference: str, ratio: str, target: str, ok: bool | None) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        self.rows.append((figure, value, reference, ratio, target, verdict))
        print(f"{figure:<46} {value:>16}   ref {reference:>14}   ×{ratio:>6}   {target:<30} {verdict}", flush=True)


def bench(script: str, *args: str) -> dict[str, Any]:
    """Run one bench script; return the JSON object of its last line of stdout."""
    done = subprocess.run([sys.executable, str(HERE / script), *args], stdout=subprocess.PIPE, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def transitions(r: Results, n: int) -> None:
    for label, extra in (("SQLite", ()), ("PostgreSQL", ("--db", PG))):
        f = bench("bench_floor.py", "transition", "--n", str(n), *extra)
        each, floor = f["service_s"] / f["n"], f["floor_s"] / f["n"]
        ok = f["per_s"] >= 2000 and each <= 3 * floor if label == "SQLite" else None
        target = "≥ 2,000/s and ≤ 3× floor"
        r.add(f"transition `select`, {label}", ms(each), ms(floor), f"{each / floor:.1f}", target, ok)
        r.add(f"transitions per second, {label}", f"{f['per_s']:,.0f}/s", f"{1 / floor:,.0f}/s", "", "", None)
        r.notes.append(
            f"transition, {label}: CPU time of the bench process {f['service_cpu_s'] / f['n'] * 1000:.3f} ms a "
            f"transition against {f['floor_cpu_s'] / f['n'] * 1000:.3f} ms for the floor "
            f"(×{f['service_cpu_s'] / f['floor_cpu_s']:.1f}; on PostgreSQL the server's share is not in it)"
        )


def batches(r: Results, sizes: list[int], kinds: list[str]) -> None:
    for what in kinds:
        per_item: dict[int, float] = {}
        for cases in sizes:
            f = bench("bench_floor.py", what, "--cases", str(cases))
            n = max(1, f["service_n"])
            each, floor = f["service_s"] / n, f["floor_s"] / max(1, f["floor_n"])
            per_item[cases] = each
            ok = each <= 5 * floor and f["peak_mib"] <= 300 if cases == 100_000 else f["peak_mib"] <= 300
            name = "tranches" if what == "pay" else "due cases"
            r.add(
                f"{what}, {cases:,} cases ({f['service_n']:,} {name})",
                f"{f['service_s']:.2f} s",
                f"{f['floor_s']:.2f} s",
                f"{each / floor:.1f}",
                "≤ 5× floor, ≤ 300 MiB" if cases == 100_000 else "≤ 300 MiB",
                ok,
            )
            r.add(f"{what}, {cases:,} cases: per item", ms(each), ms(floor), "", "", None)
            r.notes.append(
                f"{what} at {cases:,} cases: peak memory {f['peak_mib']:.0f} MiB (seeding included); CPU time "
                f"{f['service_cpu_s']:.2f} s against {f['floor_cpu_s']:.2f} s for the floor "
                f"(×{f['service_cpu_s'] / max(1e-9, f['floor_cpu_s']):.1f})"
            )
        if 1_000_000 in per_item and 100_000 in per_item:
            growth = per_item[1_000_000] / per_item[100_000]
            r.add(
                f"{what}: per item at 1M / at 100k",
                f"{growth:.2f}",
                "1.00",
                f"{growth:.2f}",
                "linear (≤ 1.5)",
                growth <= 1.5,
            )


def worker(r: Results, runs: int) -> None:
    f = bench("bench_worker.py", "--runs", str(runs))
    ratio = f["advance_median_s"] / f["trivial_median_s"]
    r.add(
        "advance-case in process (median)",
        f"{f['advance_median_s']:.3f} s",
        f"{f['trivial_median_s']:.3f} s",
        f"{ratio:.2f}",
        "≤ 1.3× a trivial run",
        ratio <= 1.3,
    )
    r.add(
        f"operator's wait through a worker (median of {f['runs']})",
        f"{f['wait_median_s']:.2f} s",
        "",
        "",
        "≤ 3 s",
        f["wait_median_s"] <= 3,
    )
    r.notes.append(
        f"operator's wait, from the run's creation: min {f['wait_min_s']:.2f} s, max {f['wait_max_s']:.2f} s; "
        f"the worker polls every {f['query_seconds']:g} s; each run is one engine process "
        f"({'a supervisor and an engine: Prefect default template' if f.get('supervisor') else 'flows/workpool.py'}). "
        f"The creating call itself (the API's answer to the UI's Run) took {f['create_median_s']:.2f} s "
        f"(median; max {f['create_max_s']:.2f} s) on the Prefect server's SQLite database"
    )


def simulation(r: Results, posts: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "sim.json"
        subprocess.run(
            [sys.executable, str(HERE / "bench_simulate.py"), "--posts", str(posts), "--json", str(out)],
            stdout=subprocess.DEVNULL,
            check=True,
        )
        f = json.loads(out.read_text())
    r.add(f"conum simulate --posts {posts:,}: wall time", f"{f['wall_s']:.1f} s", "", "", "≤ 60 s", f["wall_s"] <= 60)
    r.add(
        "… peak memory of all its processes",
        f"{f['peak_all_mib']:.0f} MiB",
        "",
        "",
        "≤ 1 GiB",
        f["peak_all_mib"] <= 1024,
    )


def write(r: Results, started: float, load: tuple[float, float], args: argparse.Namespace) -> None:
    info = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in info if "model name" in line), platform.processor())
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem = next(line.split()[1] for line in meminfo if line.startswith("MemTotal"))
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`bench/run.py`); every figure beside its floor or reference, measured in the",
        "same run. The floor is the same statements as plain SQL through the driver (`sqlite3`, `psycopg`),",
        "no ORM (`bench/bench_floor.py`).",
        "",
        f"- when: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, {time.time() - started:,.0f} s in all"
        + (" (`--full`)" if args.full else " (`--quick`)" if args.quick else ""),
        f"- machine: {os.cpu_count()} cores, {cpu}, {int(mem) // 1024:,} MiB; {platform.platform()}",
        f"- load average (1 min) at the start {load[0]:.2f}, at the end {load[1]:.2f}: the machine is shared, "
        "and wall times move with the load of other jobs",
        f"- Python {platform.python_version()}, SQLAlchemy {version('sqlalchemy')}, SQLModel {version('sqlmodel')}, "
        f"Prefect {version('prefect')}, psycopg {version('psycopg')}, SQLite {__import__('sqlite3').sqlite_version}",
        "",
        "| figure | measured | floor / reference | ratio | target | |",
        "|---|---|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in r.rows),
        "",
        *(f"- {note}" for note in r.notes),
        "",
    ]
    (HERE / "results.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="add the sweep and payment run at 1,000,000 cases")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the bench itself")
    parser.add_argument("--only", default="transition,sweep,pay,worker,simulation")
    args = parser.parse_args()
    only = set(args.only.split(","))
    started, load = time.time(), os.getloadavg()[0]
    r = Results()
    sizes = [2_000, 10_000] if args.quick else [10_000, 100_000] + ([1_000_000] if args.full else [])
    parts = [
        ("transition", lambda: transitions(r, 200 if args.quick else 1000)),
        ("sweep", lambda: batches(r, sizes, ["sweep"])),
        ("pay", lambda: batches(r, sizes, ["pay"])),
        ("worker", lambda: worker(r, 5 if args.quick else 20)),
        ("simulation", lambda: simulation(r, 300 if args.quick else 4000)),
    ]
    for name, part in parts:
        if name in only:
            part()
            # written after each part: an interrupted run leaves what it measured
            write(r, started, (load, os.getloadavg()[0]), args)


if __name__ == "__main__":
    main()
