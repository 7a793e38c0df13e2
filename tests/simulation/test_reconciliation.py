"""The reconciliation: a simulated programme's books and histories check out, and tampering is found."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from simulated import POLICY

from states.db import get_engine
from states.simulation import Outcome, reconcile


def test_small_programme_reconciles_and_reconcile_reads_the_same_books_again(first: Outcome) -> None:
    rec = first.reconciliation
    assert rec.ok, rec.violations[:10]
    assert {c.key for c in rec.checks} == {
        "tranches",
        "recovery",
        "quota",
        "candidate",
        "history",
        "audit",
        "application-history",
        "envelope",
        "application-posts",
    }
    assert all(c.checked > 0 for c in rec.checks)
    assert reconcile(get_engine(first.database_url), POLICY).to_dict() == rec.to_dict()


def test_reconciliation_finds_a_tampered_book_and_a_broken_history(first: Outcome, tmp_path: Path) -> None:
    copy = tmp_path / "tampered.db"
    shutil.copy(first.report.parent / "sim.db", copy)
    with sqlite3.connect(copy) as db:
        case_id, number = db.execute("SELECT case_id, number FROM tranche WHERE status = 'paid' LIMIT 1").fetchone()
        db.execute(
            "UPDATE tranche SET amount_cents = amount_cents + 1 WHERE case_id = ? AND number = ?", (case_id, number)
        )
        broken = db.execute("SELECT case_id, id FROM history WHERE event = 'select' LIMIT 1").fetchone()
        db.execute("DROP TRIGGER history_no_update")  # what someone with the file and its rights could do
        db.execute("UPDATE history SET to_state = 'declined' WHERE id = ?", (broken[1],))
    rec = reconcile(get_engine(f"sqlite:///{copy}"), POLICY)
    assert not rec.ok
    bad = {c.key: c.violations for c in rec.checks if not c.ok}
    assert set(bad) == {"tranches", "history", "audit"}
    assert any(f"dossier {broken[0]}, ligne {broken[1]}" in v for v in bad["audit"])
    assert any(f"dossier {case_id} " in v for v in bad["tranches"])
    assert any(f"dossier {broken[0]}," in v for v in bad["history"])


def test_reconciliation_finds_posts_not_validated_and_an_envelope_overrun(first: Outcome, tmp_path: Path) -> None:
    copy = tmp_path / "tampered.db"
    shutil.copy(first.report.parent / "sim.db", copy)
    with sqlite3.connect(copy) as db:
        app_id, structure = db.execute("SELECT id, structure_id FROM application WHERE posts_validated > 0").fetchone()
        db.execute("UPDATE structure SET posts = posts + 1 WHERE id = ?", (structure,))

    rec = reconcile(get_engine(f"sqlite:///{copy}"), POLICY.model_copy(update={"national_posts": 10}))

    bad = {c.key: c.violations for c in rec.checks if not c.ok}
    assert set(bad) == {"envelope", "application-posts"}
    assert bad["application-posts"][0].startswith(f"candidature {app_id} :")
    assert "postes validés pour 10" in bad["envelope"][0]
