"""The simulation: a realistic programme, the same figures for the same seed, books that reconcile.

A small programme (60 posts) runs once for the module, through the real
transition service, sweep, payments and delivery, with no Prefect; the tests
read its database, its report and its mail. The command's refusals run the
Typer application in-process (and once as a real process): they never reach
Prefect.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import subprocess
import sys
from collections import Counter
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from states import money
from states import simulation as simulation_module
from states.cli import app
from states.db import get_engine
from states.deliverer import DeliveryFailed
from states.errors import BadInput
from states.geo import DEPARTEMENTS
from states.models import Case, Structure, Tranche
from states.policy import Policy
from states.report import CHARTS, headline, reconcile
from states.simulation import EMPLOYERS, Config, Outcome, generate, make_config, prepare, simulate

POLICY = Policy()
SMALL = 60
CONUM = Path(sys.executable).with_name("conum")


def run(folder: Path, seed: int = 7, posts: int = SMALL, deliver: Any = "background") -> Outcome:
    folder.mkdir(parents=True, exist_ok=True)
    config = make_config(posts, seed, "2026-01-05", POLICY)
    return simulate(f"sqlite:///{folder / 'sim.db'}", POLICY, config, folder / "report.html", deliver=deliver)


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return run(tmp_path_factory.mktemp("first"))


def rows(outcome: Outcome) -> dict[str, list[tuple[Any, ...]]]:
    """The programme as data: every case, tranche and history row, without row ids where they do not matter."""
    with sqlite3.connect(str(outcome.report.parent / "sim.db")) as db:
        return {
            "cases": db.execute(
                "SELECT id, structure_id, candidate_id, state, escalation_level, contract_type, contract_start, "
                "contract_end, salary_cents, subsidy_cents, recovery_cents FROM recruitment_case ORDER BY id"
            ).fetchall(),
            "tranches": db.execute(
                "SELECT case_id, number, amount_cents, due_on, status, paid_at FROM tranche ORDER BY case_id, number"
            ).fetchall(),
            "history": db.execute(
                "SELECT case_id, event, from_state, to_state, actor, at, data FROM history ORDER BY id"
            ).fetchall(),
            "outbox": db.execute(
                "SELECT id, case_id, kind, recipient, payload, status, attempts, sent_at FROM outbox ORDER BY id"
            ).fetchall(),
        }


def without_paths(outcome: Outcome) -> dict[str, Any]:
    d = outcome.to_dict()
    d.pop("report"), d.pop("database")
    return d


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_the_same_programme_to_the_cent(first: Outcome, tmp_path: Path) -> None:
    # the first run delivers in its own process while the days go on; this one in the day loop itself
    again = run(tmp_path / "again", deliver=simulation_module._outbox_delivery)
    assert without_paths(again) == without_paths(first)
    assert again.figures.to_dict() == first.figures.to_dict()
    assert rows(again) == rows(first)
    for folder in ("mail", "payments"):  # the same mail and payment orders, byte for byte
        assert files(again.report.parent / folder) == files(first.report.parent / folder)


def test_a_delivery_process_that_dies_stops_the_run_clearly_and_loses_no_mail(tmp_path: Path) -> None:
    config = make_config(SMALL, 7, "2026-01-05", POLICY)
    sim = prepare(f"sqlite:///{tmp_path / 'sim.db'}", POLICY, config, tmp_path / "report.html")
    try:
        months = sim.months()
        sim.run_month(months[0])
        assert sim.courier is not None
        sim.courier.proc.kill()
        sim.courier.proc.wait()
        with pytest.raises(DeliveryFailed, match="the delivery process stopped"):
            sim.run_month(months[1])
    finally:
        sim.close()
    with sqlite3.connect(str(tmp_path / "sim.db")) as db:
        status = dict(db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
        mail = db.execute("SELECT id FROM outbox WHERE status = 'sent' AND kind != 'payment_order'")
        sent_mail = [i for (i,) in mail]
    # what was not delivered waits in the outbox: pending, or claimed until its lease ends; nothing failed
    assert status.get("pending", 0) + status.get("sending", 0) > 0
    assert "failed" not in status
    assert sent_mail  # the first month's mail went out, and every mail recorded as sent is written
    written = {int(p.name.split("-")[1]) for p in (tmp_path / "mail").glob("*.eml")}
    assert set(sent_mail) <= written


def test_another_seed_gives_another_programme() -> None:
    one, two = (generate(make_config(SMALL, seed, None, POLICY)) for seed in (1, 2))
    assert one != two
    assert generate(make_config(SMALL, 1, None, POLICY)) == one


# ---------------------------------------------------------------- the generated programme


def test_programme_has_structures_in_every_departement_and_the_real_mix_of_employers() -> None:
    config = make_config(4000, 3, None, POLICY)
    prog = generate(config)
    assert sum(s.posts for s in prog.structures) == config.posts
    assert {s.departement for s in prog.structures} == set(DEPARTEMENTS)
    assert all(1 <= s.posts <= 3 for s in prog.structures)
    mix = Counter(s.employer for s in prog.structures)
    weights = {e.key: e.weight for e in EMPLOYERS}
    total_weight = sum(weights.values())
    for employer in ("commune", "epci", "association"):
        share, expected = mix[employer] / len(prog.structures), weights[employer] / total_weight
        assert abs(share - expected) < 0.05, f"{employer}: {share:.2%} of structures, expected about {expected:.2%}"
    assert {s.kind for s in prog.structures if s.employer == "association"} == {"private"}
    assert {s.kind for s in prog.structures if s.employer != "association"} == {"public"}
    assert len(prog.candidates) == round(config.posts * config.candidates_per_post)
    assert 24 <= len(prog.training_orgs) <= 60
    assert len({c.email for c in prog.candidates}) == len(prog.candidates)


@pytest.mark.parametrize("posts", [1, 2, 7, 61])
def test_posts_add_up_to_what_was_asked(posts: int) -> None:
    prog = generate(make_config(posts, 5, None, POLICY))
    assert sum(s.posts for s in prog.structures) == posts


def test_candidates_hold_only_job_related_data() -> None:
    prog = generate(make_config(SMALL, 1, None, POLICY))
    assert {f for f in prog.candidates[0].__dataclass_fields__} == {"name", "email", "departement"}


# ---------------------------------------------------------------- the run


def test_small_programme_reconciles(first: Outcome) -> None:
    rec = first.reconciliation
    assert rec.ok, rec.violations[:10]
    assert {c.key for c in rec.checks} == {"tranches", "recovery", "quota", "candidate", "history"}
    assert all(c.checked > 0 for c in rec.checks)
    assert reconcile(get_engine(first.database_url), POLICY).to_dict() == rec.to_dict()


def test_every_case_ends_and_the_side_paths_happen(first: Outcome) -> None:
    f, run_ = first.figures, first.figures.run
    assert run_["open_at_end"] == 0
    assert sum(f.by_state[s] for s in ("candidate_presented", "selected", "in_post")) == 0
    assert f.by_state["tranches_paid"] > 0 and f.reached["in_post"] > 0
    totals = f.deadline_totals
    assert totals["reminders"] > 0 and totals["prefet"] > 0 and totals["time_outs"] > 0
    assert f.ruptures, "no contract broke"
    assert sum(run_["refused"].values()) > 0, "no action was refused"
    assert f.mails > 0 and f.payment_orders == sum(1 for _ in (first.report.parent / "payments").iterdir())


def test_salaries_are_at_least_the_smic_and_subsidies_follow_the_rules(first: Outcome) -> None:
    with Session(get_engine(first.database_url)) as s:
        signed = s.exec(select(Case).where(col(Case.contract_start).is_not(None))).all()
        assert signed
        for case in signed:
            assert case.contract_start is not None and case.contract_type is not None
            smic = POLICY.smic_on(case.contract_start)
            assert smic is not None and (case.salary_cents or 0) >= smic.monthly_cents
            st = s.get(Structure, case.structure_id)
            assert st is not None
            grant = money.grant(
                POLICY, st.kind, st.departement, case.contract_type, case.contract_start, case.contract_end
            )
            assert case.subsidy_cents == grant.subsidy_cents
            amounts = s.exec(select(Tranche.amount_cents).where(Tranche.case_id == case.id)).all()
            assert sum(amounts) == case.subsidy_cents


def test_reconciliation_finds_a_tampered_book_and_a_broken_history(first: Outcome, tmp_path: Path) -> None:
    copy = tmp_path / "tampered.db"
    shutil.copy(first.report.parent / "sim.db", copy)
    with sqlite3.connect(copy) as db:
        case_id, number = db.execute("SELECT case_id, number FROM tranche WHERE status = 'paid' LIMIT 1").fetchone()
        db.execute(
            "UPDATE tranche SET amount_cents = amount_cents + 1 WHERE case_id = ? AND number = ?", (case_id, number)
        )
        broken = db.execute("SELECT case_id, id FROM history WHERE event = 'select' LIMIT 1").fetchone()
        db.execute("UPDATE history SET to_state = 'declined' WHERE id = ?", (broken[1],))
    rec = reconcile(get_engine(f"sqlite:///{copy}"), POLICY)
    assert not rec.ok
    bad = {c.key: c.violations for c in rec.checks if not c.ok}
    assert set(bad) == {"tranches", "history"}
    assert any(f"dossier {case_id} " in v for v in bad["tranches"])
    assert any(f"dossier {broken[0]}," in v for v in bad["history"])


# ---------------------------------------------------------------- the report


class Page(HTMLParser):
    """The parts of the report a reader relies on: charts, headline figures, external references."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.figure: str | None = None
        self.svg_in: set[str] = set()
        self.kpi: str | None = None
        self.kpis: dict[str, str] = {}
        self.in_dd = False
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "figure":
            self.figure = a.get("id")
        if tag == "svg" and self.figure:
            self.svg_in.add(self.figure)
        if tag == "div" and a.get("data-key"):
            self.kpi = a["data-key"]
        if tag == "dd" and self.kpi:
            self.in_dd = True
            self.kpis[self.kpi] = ""
        for key in ("src", "href"):
            value = a.get(key) or ""
            if value.startswith(("http:", "https:", "//")):
                self.external.append(value)
        if tag in ("script", "link", "img", "iframe"):
            self.external.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self.figure = None
        if tag == "dd":
            self.in_dd, self.kpi = False, None

    def handle_data(self, data: str) -> None:
        if self.in_dd and self.kpi:
            self.kpis[self.kpi] += data


def test_report_has_every_chart_and_the_headline_figures(first: Outcome) -> None:
    html = first.report.read_text(encoding="utf-8")
    page = Page()
    page.feed(html)
    assert page.svg_in == {f"chart-{key}" for key in CHARTS}
    expected = {h.key: h.value for h in headline(first.figures)}
    assert page.kpis == expected
    assert page.kpis["contrats-signes"] == str(first.figures.reached["contract_signed"])
    assert page.external == [], "the report must read offline"
    assert '<html lang="fr">' in html and "Rapprochement" in html


# ---------------------------------------------------------------- refusals


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
    from dataclasses import replace

    from states.simulation import Rates

    with pytest.raises(BadInput, match="between 0 and 1"):
        make_config(10, 1, None, POLICY, rates=replace(Rates(), decline=1.5))
    with pytest.raises(BadInput, match="must not exceed 1"):
        make_config(10, 1, None, POLICY, rates=replace(Rates(), decline=0.6, silent=0.6))
    assert isinstance(make_config(10, 1, date(2026, 3, 2), POLICY), Config)


# ---------------------------------------------------------------- in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HEADLESS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium)")
def test_report_renders_offline_in_headless_chromium(first: Outcome, tmp_path: Path) -> None:
    common = [CHROMIUM or "", *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}"]
    url = first.report.resolve().as_uri()
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    assert dom.stdout.count("<svg") >= len(CHARTS), "the charts did not reach the rendered page"
    assert "Rapprochement" in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1300,2000", url], capture_output=True, timeout=120, check=True
    )
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1300, 2000)
    assert len(png) > 50_000, "the screenshot is nearly blank: the page did not render"
