"""The simulation starts with the structures' applications: opinion, committee, convention, then recruitment."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from simulated import POLICY, SMALL

from states.simulation import Outcome, Rates, make_config, prepare


def _db(outcome: Outcome) -> sqlite3.Connection:
    return sqlite3.connect(str(outcome.report.parent / "sim.db"))


def test_every_structure_recruits_only_after_its_convention_and_up_to_its_posts_validated(first: Outcome) -> None:
    with _db(first) as db:
        early = db.execute(
            "SELECT c.id FROM recruitment_case c JOIN application a ON a.structure_id = c.structure_id "
            "JOIN application_history h ON h.application_id = a.id AND h.event = 'sign_convention' "
            "WHERE c.presented_at < h.at"
        ).fetchall()
        unsigned = db.execute(
            "SELECT count(*) FROM recruitment_case c JOIN application a ON a.structure_id = c.structure_id "
            "WHERE a.state != 'convention_signed'"
        ).fetchone()[0]
        posts = db.execute(
            "SELECT count(*) FROM structure s JOIN application a ON a.structure_id = s.id "
            "WHERE s.posts != a.posts_validated"
        ).fetchone()[0]
    assert early == [] and unsigned == 0
    assert posts == 0  # a structure's posts are the posts its committee validated


def test_the_committee_refuses_some_reduces_some_and_never_validates_beyond_the_envelope(first: Outcome) -> None:
    a = first.figures.applications
    funnel = {step["key"]: step for step in a["funnel"]}
    assert a["envelope"] == SMALL
    assert (
        funnel["submitted"]["applications"] == funnel["opinion"]["applications"] + funnel["withdrawn"]["applications"]
    )
    assert funnel["refused"]["applications"] > 0 and a["reduced"] > 0 and a["unfavourable"] > 0
    assert funnel["validated"]["posts"] == first.figures.posts == a["posts_held"] <= SMALL
    assert funnel["convention"]["posts"] == funnel["validated"]["posts"]
    assert funnel["submitted"]["posts"] > SMALL  # more requested than the envelope holds
    months = a["by_month"]
    assert months[-1]["validated_total"] == funnel["validated"]["posts"]
    assert all(m["left"] >= 0 for m in months)
    assert [m["validated_total"] for m in months] == sorted(m["validated_total"] for m in months)


def test_the_report_shows_the_application_funnel_and_the_envelope_by_month(first: Outcome) -> None:
    page = first.report.read_text(encoding="utf-8")
    section = page[page.index('<section id="candidatures">') : page.index('<section id="entonnoir">')]
    assert "Des candidatures aux conventions" in section
    assert f"l'enveloppe nationale de {SMALL} postes" in section
    assert '<tr data-step="refused"><td>Refusées en comité de sélection</td>' in section
    assert "<svg" in section and "L'enveloppe mois par mois" in section
    assert first.figures.applications["by_month"][0]["label"] in section


def test_an_envelope_spent_refuses_the_last_validations_naming_the_rule(tmp_path: Path) -> None:
    # a programme where nobody is refused or reduced: the requests beyond the envelope meet its rule
    rates = Rates(refuse_favourable=0.0, unfavourable=0.0, reduce=0.0, app_withdraw=0.0)
    config = replace(make_config(12, 3, "2026-01-05", POLICY), rates=rates)
    sim = prepare(f"sqlite:///{tmp_path / 'sim.db'}", POLICY, config, tmp_path / "report.html", deliver=None)
    try:
        for month in sim.months()[:12]:
            sim.run_month(month)
    finally:
        sim.close()
    assert sim.stats.refused["within_envelope"] > 0
    with sqlite3.connect(str(tmp_path / "sim.db")) as db:
        held = db.execute("SELECT sum(posts_validated) FROM application").fetchone()[0]
        reasons = {
            r
            for (r,) in db.execute(
                "SELECT json_extract(data, '$.reason') FROM application_history WHERE event = 'refuse'"
            )
        }
    assert held == 12
    assert reasons == {"enveloppe nationale épuisée"}
