"""Helpers of the simulation tests: run a small programme, read it back as data."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from states.policy import Policy
from states.simulation import Outcome, make_config, simulate

POLICY = Policy()
#: Posts of the small programme the tests run: enough for every side path to happen.
SMALL = 60


def run(folder: Path, seed: int = 7, posts: int = SMALL, deliver: Any = "background") -> Outcome:
    """Simulate a programme into ``folder`` (its database, report, mail and payment orders), without Prefect."""
    folder.mkdir(parents=True, exist_ok=True)
    config = make_config(posts, seed, "2026-01-05", POLICY)
    return simulate(f"sqlite:///{folder / 'sim.db'}", POLICY, config, folder / "report.html", deliver=deliver)


def files(folder: Path) -> dict[str, bytes]:
    """The files of ``folder`` by name, byte for byte."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


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
            "applications": db.execute(
                "SELECT id, structure_id, siret, state, posts_requested, posts_validated, committee, committee_on, "
                "opinion, convention_start, convention_end FROM application ORDER BY id"
            ).fetchall(),
            "application_history": db.execute(
                "SELECT application_id, event, from_state, to_state, actor, at, data FROM application_history "
                "ORDER BY id"
            ).fetchall(),
            "outbox": db.execute(
                "SELECT id, case_id, kind, recipient, payload, status, attempts, sent_at FROM outbox ORDER BY id"
            ).fetchall(),
        }


def without_paths(outcome: Outcome) -> dict[str, Any]:
    """The outcome as JSON-ready data, without what differs between two runs of the same seed (the paths)."""
    d = outcome.to_dict()
    d.pop("report"), d.pop("database")
    return d
