"""Profile the domain core's hot paths with pyinstrument; write the profiles' text to bench/profiles/.

    .venv/bin/python bench/profile.py sweep --cases 10000
    .venv/bin/python bench/profile.py pay --cases 10000
    .venv/bin/python bench/profile.py transition --n 1000

The database is seeded as ``bench_floor.py`` seeds it (a temporary SQLite file). The profile shows the
CPU and wall time of each call, slowest first; ``--out`` names the text file written (default
``bench/profiles/WHAT.txt``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_floor
from pyinstrument import Profiler

from states import batch, service
from states.db import get_engine, migrate, write_session
from states.policy import Policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("transition", "sweep", "pay"))
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="conum-profile-"))
    try:
        url = f"sqlite:///{folder / 'bench.db'}"
        migrate(url)
        engine = get_engine(url)
        policy = Policy()
        if args.what == "transition":
            bench_floor.seed(engine, args.n, "presented", due_every=10**9)
        else:
            bench_floor.seed(engine, args.cases, "presented" if args.what == "sweep" else "in_post")
        profiler = Profiler(interval=0.0005)
        profiler.start()
        if args.what == "transition":
            for case_id in range(1, args.n + 1):
                with write_session(engine) as s:
                    service.fire(s, case_id, "select", at=bench_floor.AT, policy=policy)
        elif args.what == "sweep":
            batch.sweep(engine, bench_floor.AT, policy)
        else:
            batch.pay(engine, bench_floor.AT, policy)
        profiler.stop()
        text = profiler.output_text(unicode=True, color=False, show_all=False)
        text = text.replace(str(Path(__file__).resolve().parents[1]) + "/", "")  # paths from the project's root
        out = args.out or Path(__file__).resolve().parent / "profiles" / f"{args.what}.txt"
        out.write_text(text, encoding="utf-8")
        print(text)
        engine.dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
