"""Benchmark of the whole simulation: wall time and peak memory of ``conum simulate``.

    .venv/bin/python bench/bench_simulate.py [--posts N] [--seed S] [--breakdown] [--keep DIR]

By default it runs the installed ``conum simulate --posts N`` as a real
process in a temporary folder (a new SQLite database, the report, its mail and
payment orders), as a user would, Prefect included (a temporary server unless
``PREFECT_API_URL`` is set). It first creates the temporary server's database
(``PREFECT_HOME``, a new one in the folder unless set), as ``make demo`` does
once per machine, and times that apart. It prints the wall time, the peak
resident memory of the largest process and that of all the command's
processes together (the command, its delivery process, the Prefect server),
sampled every quarter of a second.

With ``--breakdown`` it runs the same simulation in this process without
Prefect and prints where the time goes: each event of the transition service
(by name), the sweep, the payment run, the time the day loop waits for the
delivery process (or, with ``--inline-delivery``, the delivery run in the day
loop itself), the behaviour model (the rest of the day loop), the figures and
the report. It prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CONUM = Path(sys.executable).with_name("conum")


def mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


TICKS = os.sysconf("SC_CLK_TCK")


def _tree(pid: int, cpu: dict[int, tuple[str, float]]) -> int:
    """The resident memory of ``pid`` and all its descendants now (Linux ``/proc``), in KiB.

    ``cpu`` gets each process's name and CPU seconds so far.
    """
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            args = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
            name = " ".join(a.decode(errors="replace").rsplit("/", 1)[-1] for a in args[:4] if a)
            cpu[p] = (name, (int(fields[11]) + int(fields[12])) / TICKS)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError, IndexError):
            continue  # the process ended meanwhile
    return total


def prefect_database() -> None:
    """Create the temporary Prefect server's database, as ``make demo`` does once per machine; time it."""
    home = Path(os.environ["PREFECT_HOME"])
    if (home / "prefect.db").exists():
        print(f"Prefect database  already in {home}")
        return
    home.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    env = {**os.environ, "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    subprocess.run(
        [str(CONUM.with_name("prefect")), "--no-prompt", "server", "database", "upgrade", "-y"],
        env=env,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    print(f"Prefect database  created in {time.perf_counter() - t0:,.1f} s (once per machine; not counted below)")


def run_command(posts: int, seed: int, folder: Path, figures: Path | None = None) -> None:
    prefect_database()
    cmd = [str(CONUM), "simulate", "--posts", str(posts), "--seed", str(seed), "--report", str(folder / "report.html")]
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    with (folder / "stdout.txt").open("w") as stdout:
        proc = subprocess.Popen(cmd, cwd=folder, stdout=stdout, text=True)
        peak_tree, cpu = 0, dict[int, tuple[str, float]]()
        while proc.poll() is None:  # the memory of all the command's processes together, sampled
            peak_tree = max(peak_tree, _tree(proc.pid, cpu))
            time.sleep(0.25)
    wall = time.perf_counter() - t0
    out = (folder / "stdout.txt").read_text()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(out[-3000:])
    print(f"exit code         {proc.returncode}")
    print(f"wall time         {wall:,.1f} s for {posts:,} posts")
    print(f"CPU time          {children.ru_utime + children.ru_stime:,.1f} s (the command and its children)")
    print(f"peak RSS          {mib(children.ru_maxrss)} (the largest single process)")
    print(f"peak RSS, all     {mib(peak_tree)} (the command, its delivery process and the Prefect server together)")
    for name, seconds in sorted(cpu.values(), key=lambda item: -item[1]):
        print(f"CPU {seconds:7.1f} s    {name[:100]}")
    if figures:
        figures.write_text(
            json.dumps(
                {
                    "posts": posts,
                    "returncode": proc.returncode,
                    "wall_s": wall,
                    "peak_one_mib": children.ru_maxrss / 1024,
                    "peak_all_mib": peak_tree / 1024,
                }
            )
        )


class Clock:
    """Time spent in named parts, measured by wrapping functions."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.depth = 0

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            self.seconds[name] += time.perf_counter() - t0
            self.calls[name] += 1

    def wrap(self, owner: Any, attr: str, name: Callable[..., str] | str) -> None:
        original = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.depth:  # nested (a sweep's own transitions): counted by the outer part
                return original(*args, **kwargs)
            with self.part(name(*args, **kwargs) if callable(name) else name):
                return original(*args, **kwargs)

        setattr(owner, attr, timed)


def breakdown(posts: int, seed: int, folder: Path, inline: bool) -> None:
    from states import simulation
    from states.policy import Policy
    from states.simulation import dayloop

    clock = Clock()
    clock.wrap(dayloop.service, "fire", lambda *a, **k: f"service.fire {a[2]}")
    clock.wrap(dayloop.service, "present", "service.present")
    clock.wrap(dayloop.batch, "sweep", "batch.sweep")
    clock.wrap(dayloop.batch, "pay", "batch.pay")
    delivery: Any = "background"
    if inline:
        deliver = dayloop.inline_delivery

        def timed_delivery(*args: Any) -> Any:
            with clock.part("delivery.deliver (in the day loop)"):
                return deliver(*args)

        delivery = timed_delivery
    else:
        from states.outbox.process import BackgroundDelivery

        clock.wrap(BackgroundDelivery, "day_over", "delivery: handing a day to the delivery process")
        clock.wrap(BackgroundDelivery, "drain", "delivery: waiting for the last mail")

    policy = Policy()
    config = simulation.make_config(posts, seed, None, policy)
    t0 = time.perf_counter()
    with clock.part("setup (generate and insert)"):
        sim = simulation.prepare(
            f"sqlite:///{folder / 'simulation.db'}", policy, config, folder / "report.html", deliver=delivery
        )
    t1 = time.perf_counter()
    sim.run()
    loop = time.perf_counter() - t1
    with clock.part("figures, reconciliation, report"):
        outcome = simulation.conclude(sim, folder / "report.html")
    sim.close()
    wall = time.perf_counter() - t0
    inside = sum(v for k, v in clock.seconds.items() if not k.startswith(("setup", "figures")))
    clock.seconds["behaviour model and day loop (the rest)"] = loop - inside
    print(f"{'part':<45} {'calls':>8} {'seconds':>9} {'ms/call':>8} {'share':>6}")
    for name, seconds in sorted(clock.seconds.items(), key=lambda item: -item[1]):
        calls = clock.calls.get(name, 0)
        per = f"{1000 * seconds / calls:8.2f}" if calls else " " * 8
        print(f"{name:<45} {calls:>8,} {seconds:>9.1f} {per} {100 * seconds / wall:5.1f}%")
    f = outcome.figures
    print(
        f"\n{f.cases:,} cases, {sum(f.run['actions'].values()):,} actions, {f.run['payments']:,} tranches paid, "
        f"{f.mails:,} e-mails, {f.payment_orders:,} payment orders; reconciliation "
        f"{'OK' if outcome.ok else 'VIOLATIONS'}"
    )
    print(f"wall time         {wall:,.1f} s for {posts:,} posts (no Prefect)")
    print(f"peak RSS          {mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)}")
    print(f"report            {outcome.report}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--breakdown", action="store_true", help="in this process, without Prefect: time by part")
    parser.add_argument(
        "--inline-delivery", action="store_true", help="with --breakdown: deliver in the day loop, not beside it"
    )
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it, instead of a temporary one")
    parser.add_argument("--json", type=Path, help="also write the figures to this file, as one JSON object")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="conum-bench-sim-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(folder / "prefect"))
    try:
        if args.breakdown:
            breakdown(args.posts, args.seed, folder, args.inline_delivery)
        else:
            run_command(args.posts, args.seed, folder, args.json)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
