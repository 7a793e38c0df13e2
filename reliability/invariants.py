"""What must hold on the database after every trial, read with plain SQL on either backend.

- **lost**: an acknowledged transition (a command that exited 0, a step a batch run reported) is not in
  the history.
- **doubled**: a transition recorded twice from the same state (self-loops apart: reminders and
  escalations, checked by their step), a deadline step twice, a tranche paid twice, a payment order or
  a notification queued twice, two open cases of one candidate with one structure, two contracts of one
  candidate at once, a structure over its posts.
- **half-written**: a case whose state is not its last history row's target, whose version is not its
  number of history rows, whose chain ``conum verify`` finds broken; a paid tranche without its history
  row or payment order, or the other way round; a case whose tranches are all paid but not closed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, bindparam, text

from states.audit import verify

ACTIVE = ("contract_signed", "in_training", "in_post")
CLOSED = ("declined", "withdrawn", "expired", "broken", "cancelled", "tranches_paid")
PAY_EVENTS = ("pay_tranche", "pay_final_tranche")
STEP_EVENTS = ("remind", "escalate")


@dataclass(frozen=True)
class Ack:
    """A transition a process said it made: ``event`` on ``case`` (``present`` for an opening)."""

    case: int
    event: str


@dataclass
class Findings:
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    half: list[str] = field(default_factory=list)

    def counts(self) -> tuple[int, int, int]:
        return len(self.lost), len(self.doubled), len(self.half)

    def __bool__(self) -> bool:
        return bool(self.lost or self.doubled or self.half)


def _data(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def check(engine: Engine, acks: Iterable[Ack] = (), cases: Iterable[int] | None = None) -> Findings:
    """Check every invariant on the database (only on ``cases`` if given); return what broke."""
    found = Findings()
    only = sorted(set(cases)) if cases is not None else None

    def fetch(sql: str, key: str) -> list[Any]:
        if only is None:
            return list(con.execute(text(sql)))
        head, _, order = sql.partition(" ORDER BY")
        where = " AND " if " WHERE " in head else " WHERE "
        stmt = text(f"{head}{where}{key} IN :ids" + (f" ORDER BY{order}" if order else ""))
        return list(con.execute(stmt.bindparams(bindparam("ids", expanding=True)), {"ids": only}))

    with engine.connect() as con:
        cases_ = {
            r[0]: r
            for r in fetch(
                "SELECT id, state, version, structure_id, candidate_id, history_hash FROM recruitment_case", "id"
            )
        }
        history: dict[int, list[Any]] = {}
        for r in fetch(
            "SELECT case_id, id, event, from_state, to_state, data, hash FROM history ORDER BY id", "case_id"
        ):
            history.setdefault(r[0], []).append(r)
        tranches = fetch("SELECT case_id, number, status FROM tranche", "case_id")
        outbox = fetch("SELECT case_id, kind, recipient, payload FROM outbox", "case_id")
        posts: dict[int, int] = dict(con.execute(text("SELECT id, posts FROM structure")).all())

    seen = {(case, row[2]) for case, rows in history.items() for row in rows}
    for ack in acks:
        if (ack.case, ack.event) not in seen:
            found.lost.append(f"case {ack.case}: acknowledged {ack.event} is not in the history")

    paid_rows: Counter[tuple[int, int]] = Counter()
    for case_id, (_, state, version, *_rest) in cases_.items():
        rows = history.get(case_id, [])
        if not rows:
            found.half.append(f"case {case_id}: no history row")
            continue
        if rows[-1][4] != state:
            found.half.append(f"case {case_id}: state {state}, last history row says {rows[-1][4]}")
        if version != len(rows):
            found.half.append(f"case {case_id}: version {version} for {len(rows)} history row(s)")
        moves = Counter(r[3] for r in rows if r[3] != r[4])
        steps = Counter((r[3], r[2], _data(r[5]).get("step")) for r in rows if r[2] in STEP_EVENTS)
        found.doubled += [f"case {case_id}: left {s} {n} times" for s, n in moves.items() if n > 1]
        found.doubled += [f"case {case_id}: {k[1]} step {k[2]} in {k[0]} {n} times" for k, n in steps.items() if n > 1]
        for r in rows:
            if r[2] in PAY_EVENTS:
                paid_rows[(case_id, int(_data(r[5])["number"]))] += 1

    doubled_pay = [k for k, n in paid_rows.items() if n > 1]
    found.doubled += [f"case {c}: tranche {n} paid {paid_rows[(c, n)]} times" for c, n in doubled_pay]
    paid_status = {(r[0], r[1]) for r in tranches if r[2] == "paid"}
    found.half += [f"case {c}: tranche {n} paid without its history row" for c, n in paid_status - set(paid_rows)]
    found.half += [f"case {c}: tranche {n} in the history, not paid" for c, n in set(paid_rows) - paid_status]
    scheduled = {r[0] for r in tranches if r[2] == "scheduled"}
    found.half += [
        f"case {c}: tranches_paid with a tranche still scheduled"
        for c, row in cases_.items()
        if row[1] == "tranches_paid" and c in scheduled
    ]

    orders: Counter[tuple[int, int]] = Counter()
    queued: Counter[tuple[Any, ...]] = Counter()
    for case_id, kind, recipient, payload in outbox:
        p = _data(payload)
        queued[(case_id, kind, recipient, json.dumps(p, sort_keys=True))] += 1
        if kind == "payment_order":
            orders[(case_id, int(p["tranche_number"]))] += 1
    found.doubled += [f"case {k[0]}: {k[1]} to {k[2]} queued {n} times" for k, n in queued.items() if n > 1]
    found.half += [f"case {c}: tranche {n} paid without its payment order" for c, n in paid_status - set(orders)]
    found.half += [f"case {c}: payment order of tranche {n}, not paid" for c, n in set(orders) - paid_status]

    open_pairs: Counter[tuple[int, int]] = Counter()
    contracts: Counter[int] = Counter()
    active_by_structure: Counter[int] = Counter()
    for _, state, _v, structure, candidate, _h in cases_.values():
        if state not in CLOSED:
            open_pairs[(candidate, structure)] += 1
        if state in ACTIVE:
            contracts[candidate] += 1
            active_by_structure[structure] += 1
    found.doubled += [
        f"candidate {c} presented {n} times to structure {s}" for (c, s), n in open_pairs.items() if n > 1
    ]
    found.doubled += [f"candidate {c} under {n} contracts" for c, n in contracts.items() if n > 1]
    found.doubled += [
        f"structure {s}: {n} contracts for {posts.get(s)} post(s)"
        for s, n in active_by_structure.items()
        if n > (posts.get(s) or 0)
    ]

    broken = verify(engine).broken if only is None else [b for c in only for b in verify(engine, c).broken]
    found.half += [f"case {b.case_id}: history chain broken at row {b.history_id}: {b.reason}" for b in broken]
    return found
