"""A scripted walk of a few cases through every path of the lifecycle.

It drives the real transition service, sweep and payment run on a database,
moving a simulated clock, and prints each case's history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from states import batch, registry, service
from states.clock import parse_instant, shift
from states.db import write_session
from states.policy import Policy
from states.views import get_case


def walk(engine: Engine, policy: Policy, start: str = "2026-01-05T09:00") -> list[dict[str, Any]]:
    """Run the scripted cases; return them as ``show`` prints them."""
    t0 = parse_instant(start)

    def at(days: int, months: int = 0) -> datetime:
        return shift(t0, days, months)

    with write_session(engine) as s:
        lib = registry.add_structure(
            s, name="Médiathèque François-Mitterrand", departement="86", posts=2, email="mediatheque@ville-exemple.fr"
        )
        asso = registry.add_structure(
            s,
            name="Association Les Connectés",
            departement="974",
            posts=1,
            kind="private",
            email="contact@lesconnectes.re",
        )
        org = registry.add_training_org(s, name="Simplon.co", email="formation@simplon.co")
        people = [
            registry.add_candidate(s, name=n, email=f"{n.split()[0].lower()}@exemple.fr", departement=d)
            for n, d in [
                ("Amina Diallo", "86"),
                ("Bruno Petit", "86"),
                ("Chloé Bernard", "86"),
                ("David Leroy", "86"),
                ("Émilie Robert", "974"),
                ("Farid Benali", "974"),
                ("Gaëlle Hoarau", "974"),
            ]
        ]
        cases = {
            name: service.present(s, st, cand, at=at(0), policy=policy).id or 0
            for name, st, cand in [
                ("happy", lib, people[0]),
                ("declined", lib, people[1]),
                ("withdrawn", lib, people[2]),
                ("expired", lib, people[3]),
                ("escalated", asso, people[4]),
                ("broken", asso, people[5]),
                ("cancelled", lib, people[6]),
                ("elsewhere", asso, people[0]),
            ]
        }

    def go(name: str, event: str, day: int, actor: str = "admin", months: int = 0, **data: str) -> None:
        with write_session(engine) as s:
            service.fire(s, cases[name], event, actor=actor, at=at(day, months), data=data, policy=policy)

    def run_batches(day: int, months: int = 0) -> None:
        batch.sweep(engine, at(day, months), policy)
        batch.pay(engine, at(day, months), policy)

    go("happy", "select", 3, actor=f"structure:{lib}")
    go("happy", "contact_training_org", 4, org=str(org))
    go(
        "happy", "sign_contract", 8, type="CDD", start="2026-02-01", end="2028-01-31", salary="1900.00"
    )  # the candidate's other case closes
    go("declined", "decline", 5, actor=f"structure:{lib}", reason="profil trop éloigné du poste")
    go("withdrawn", "withdraw", 6, actor=f"candidate:{people[2]}", reason="a trouvé un autre emploi")
    go("cancelled", "cancel", 7, actor="prefet:86", reason="poste réattribué")
    go("escalated", "select", 2, actor=f"structure:{asso}")
    go("broken", "select", 2)
    go("broken", "contact_training_org", 3, org=str(org))
    go("broken", "sign_contract", 9, type="PEC", start="2026-02-01", end="2027-01-31", salary="1850.00")
    run_batches(20)  # day 20: "expired" times out, "escalated" goes to the préfet
    go("happy", "start_training", 30, date="2026-02-02")
    go("broken", "start_training", 30, date="2026-02-02")
    run_batches(40)  # day 40: "escalated" goes to the ANCT
    go("happy", "complete_training", 0, months=5, date="2026-06-01")
    go("broken", "complete_training", 0, months=5, date="2026-06-01")
    run_batches(1, months=5)  # tranche 1 of both
    go("broken", "break_contract", 10, months=5, reason="demission", date="2026-06-15")
    run_batches(60, months=5)  # "escalated" has long timed out
    for months in (13, 25):
        run_batches(0, months=months)  # tranches 2 and 3 of "happy"
    return [get_case(engine, cid) for cid in cases.values()]


def print_walk(views: list[dict[str, Any]], console: Console | None = None) -> None:
    console = console or Console()
    for view in views:
        money = f"subsidy {view['subsidy_cents'] / 100:,.2f} €" if view["subsidy_cents"] else "no subsidy"
        if view["recovery_cents"]:
            money += f", to recover {view['recovery_cents'] / 100:,.2f} €"
        table = Table(title=f"Case {view['id']}: {view['label']} ({view['state']}) — {money}", title_justify="left")
        for col in ("at", "event", "from → to", "actor", "data"):
            table.add_column(col)
        for h in view["history"]:
            data = ", ".join(f"{k}={v}" for k, v in h["data"].items())
            table.add_row(h["at"][:16], h["event"], f"{h['from'] or '∅'} → {h['to']}", h["actor"], data)
        console.print(table)
