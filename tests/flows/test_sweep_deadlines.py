"""sweep-deadlines: each deadline step fires once, whatever runs at the same time or crashed before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from prefect.artifacts import Artifact
from prefect.settings import PREFECT_API_URL
from sqlalchemy import Engine
from sqlmodel import col, select

from flows.sweep import sweep_deadlines
from states import registry, service
from states.clock import parse_instant
from states.db import read_session, write_session
from states.models import History
from states.policy import Policy

ROOT = Path(__file__).resolve().parents[2]
PRESENTED = "2026-03-02T10:00"
REMINDER_DUE = "2026-03-13T10:00"  # day 11: the day-10 reminder of every presented case is due

# a sweep in its own process, started when the test says go; `crash_after` kills it (SIGKILL) once
# that many chunks are committed, as a machine that dies in the middle of the sweep
CHILD = """
import json, os, signal, sys, time
from pathlib import Path

import flows.common as common
from flows.common import without_heartbeats
from flows.sweep import sweep_deadlines

ready, go, at, crash_after = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
chunks = 0
update = common.update_progress_artifact


def progress(*args, **kwargs):
    global chunks
    chunks += 1
    if chunks == crash_after:
        os.kill(os.getpid(), signal.SIGKILL)
    return update(*args, **kwargs)


common.update_progress_artifact = progress
ready.touch()
while not go.exists():
    time.sleep(0.01)
with without_heartbeats():
    print(json.dumps(sweep_deadlines(at=at, chunk=5)))
"""


def _present(engine: Engine, n: int) -> list[int]:
    """Open ``n`` cases at the same instant, in one transaction."""
    at = parse_instant(PRESENTED)
    with write_session(engine) as s:
        structure = registry.add_structure(s, name="Médiathèque", departement="33", posts=n)
        return [
            service.present(
                s,
                structure,
                registry.add_candidate(s, name="Camille Durand", email="c@exemple.fr"),
                at=at,
                policy=Policy(),
            ).id
            or 0
            for _ in range(n)
        ]


def _reminders(engine: Engine) -> Counter[int]:
    with read_session(engine) as s:
        return Counter(s.exec(select(History.case_id).where(col(History.event) == "remind")).all())


def _sweeps(conum_env: Any, tmp_path: Path, crash_after: list[int]) -> list[subprocess.CompletedProcess[str]]:
    """Run one sweep process per item of ``crash_after`` (0: no crash), all starting at the same moment."""
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    go = tmp_path / "go"
    procs = []
    for i, crash in enumerate(crash_after):
        ready = tmp_path / f"ready-{i}"
        cmd = [sys.executable, "-c", CHILD, str(ready), str(go), REMINDER_DUE, str(crash)]
        procs.append(
            (ready, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        )
    deadline = time.monotonic() + 120
    while not all(r.exists() for r, _ in procs):
        assert time.monotonic() < deadline, "the sweep processes did not start"
        assert all(p.poll() is None for _, p in procs), [p.communicate() for _, p in procs]
        time.sleep(0.05)
    go.touch()
    out = []
    for _, p in procs:
        stdout, stderr = p.communicate(timeout=180)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def test_two_sweeps_at_once_fire_each_deadline_once(conum_env: Any, tmp_path: Path) -> None:
    cases = _present(conum_env.engine, 60)

    runs = _sweeps(conum_env, tmp_path, crash_after=[0, 0])

    assert [r.returncode for r in runs] == [0, 0], [r.stderr[-2000:] for r in runs]
    counts = [json.loads(r.stdout.strip().splitlines()[-1]) for r in runs]
    assert sum(c["reminded"] for c in counts) == 60
    assert _reminders(conum_env.engine) == Counter({case: 1 for case in cases})


def test_a_sweep_run_again_after_a_crash_finishes_the_work_without_repeating_it(conum_env: Any, tmp_path: Path) -> None:
    cases = _present(conum_env.engine, 30)

    [crashed] = _sweeps(conum_env, tmp_path, crash_after=[2])  # dies after its second chunk of 5

    assert crashed.returncode != 0
    assert sum(_reminders(conum_env.engine).values()) == 10
    again = sweep_deadlines(at=parse_instant(REMINDER_DUE), chunk=5)
    assert again["reminded"] == 20
    assert _reminders(conum_env.engine) == Counter({case: 1 for case in cases})
    assert sweep_deadlines(at=parse_instant(REMINDER_DUE), chunk=5)["reminded"] == 0


def test_the_sweep_reports_what_it_did_in_its_artifacts(world: Any, conum_env: Any) -> None:
    reminded = world.present(world.structure(), world.candidate(), at="2026-03-01T10:00")
    expired = world.present(world.structure(), world.candidate(), at="2026-02-20T10:00")

    state = sweep_deadlines(at=parse_instant("2026-03-12T10:00"), return_state=True)

    assert state.result() == {"reminded": 1, "escalated": 0, "timed_out": 1, "skipped": 0}
    run_id = state.state_details.flow_run_id
    table = Artifact.get("sweep-deadlines")
    assert table is not None and table.flow_run_id == run_id
    rows = json.loads(str(table.data))
    assert {(r["dossier"], r["action"]) for r in rows} == {(reminded, "Relance"), (expired, "Délai dépassé")}
    assert all(r["échéance"][2:].startswith("/03/2026 ") for r in rows)  # Paris day, to the minute
    summary = Artifact.get("sweep-deadlines-summary")
    assert summary is not None and summary.flow_run_id == run_id
    assert "- relancés : 1" in str(summary.data) and "- délai dépassé (dossier clos) : 1" in str(summary.data)
    progress = Artifact.get("sweep-deadlines-progress")
    assert progress is not None and progress.flow_run_id == run_id and progress.data == 100.0
