"""What a simulation refuses before it writes anything: a used database, leftover mail, input it cannot use.

The command's refusals run the Typer application in-process (and once as a
real process): they never reach Prefect.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from simulated import POLICY, SMALL, rows
from typer.testing import CliRunner

from flows.cli import app
from states.errors import BadInput
from states.simulation import Config, Outcome, Rates, make_config, prepare

CONUM = Path(sys.executable).with_name("conum")


def test_a_database_holding_a_programme_is_refused_and_left_as_it_was(first: Outcome, tmp_path: Path) -> None:
    db = first.report.parent / "sim.db"
    before = rows(first)
    config = make_config(SMALL, 7, None, POLICY)
    with pytest.raises(BadInput, match="already holds a programme"):
        prepare(f"sqlite:///{db}", POLICY, config, tmp_path / "elsewhere" / "report.html")
    assert rows(first) == before
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize(
    ("posts", "seed", "start", "message"),
    [
        (0, 1, "2026-01-05", "--posts"),
        (-3, 1, "2026-01-05", "--posts"),
        (10, 1, "2026-02-30", "--start"),
        (10, 1, "demain", "--start"),
        (10, 1, "2019-06-01", "SMIC"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    posts: int, seed: int, start: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(
        app, ["simulate", "--posts", str(posts), "--seed", str(seed), "--start", start, "--report", "out/r.html"]
    )
    assert res.exit_code == 2, res.output
    assert res.stdout == ""
    assert message in res.stderr and "refused" in res.stderr
    assert list(tmp_path.iterdir()) == [], "a refused simulation wrote something"


def test_command_refuses_a_used_database_and_leftover_mail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'used.db'}"
    assert runner.invoke(app, ["init", "--db", url]).exit_code == 0
    added = runner.invoke(
        app, ["structure", "add", "--name", "Mairie", "--departement", "33", "--posts", "1", "--db", url]
    )
    assert added.exit_code == 0
    before = (tmp_path / "used.db").read_bytes()
    res = runner.invoke(app, ["simulate", "--posts", "5", "--db", url, "--report", "out/r.html"])
    assert res.exit_code == 2 and "already holds a programme" in res.stderr
    assert (tmp_path / "used.db").read_bytes() == before
    (tmp_path / "out" / "mail").mkdir(parents=True)
    (tmp_path / "out" / "mail" / "old.eml").write_text("x")
    res = runner.invoke(app, ["simulate", "--posts", "5", "--report", "out/r.html"])
    assert res.exit_code == 2 and "earlier run" in res.stderr
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["mail", "old.eml"]


def test_negative_posts_refused_by_the_installed_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONUM_", "PREFECT_"))}
    done = subprocess.run(
        [str(CONUM), "simulate", "--posts", "-1"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "--posts must be a whole number of at least 1" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_config_refuses_rates_that_cannot_describe_people() -> None:
    with pytest.raises(BadInput, match="between 0 and 1"):
        make_config(10, 1, None, POLICY, rates=replace(Rates(), decline=1.5))
    with pytest.raises(BadInput, match="must not exceed 1"):
        make_config(10, 1, None, POLICY, rates=replace(Rates(), decline=0.6, silent=0.6))
    assert isinstance(make_config(10, 1, date(2026, 3, 2), POLICY), Config)
