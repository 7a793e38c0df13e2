"""The audit trail: each case's history is a hash chain that nobody rewrites quietly.

Each history row holds the hash of its own content and of the previous row of
the same case (``prev_hash``); the case holds the hash of its last row
(``history_hash``), so that a row removed at the end shows too. The database
itself refuses UPDATE and DELETE on the history (triggers, see the migrations);
``verify`` recomputes every chain and names the first broken row of each case.

Personal data stays out of the history rows: the free text a person typed (a
reason) goes to ``history_note``, which privacy work may scrub without touching
the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text

from states.clock import utc

#: The version of the lifecycle table and of the policy, recorded on each case at its presentation.
_DIGEST_LENGTH = 16


def digest(value: Any) -> str:
    """Return a short stable digest of a JSON-able value (the version of a table or a policy)."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:_DIGEST_LENGTH]


def row_hash(
    *,
    case_id: int,
    event: str,
    from_state: str | None,
    to_state: str,
    actor: str,
    at: datetime,
    data: dict[str, Any],
    flow_run_id: str | None,
    prev_hash: str | None,
) -> str:
    """Return the hash of one history row, chained to the previous one of its case."""
    content = {
        "case": case_id,
        "event": event,
        "from": from_state,
        "to": to_state,
        "actor": actor,
        "at": utc(at).isoformat(),
        "data": data,
        "flow_run": flow_run_id,
        "prev": prev_hash,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Break:
    """The first row of a case's history that does not match its chain."""

    case_id: int
    history_id: int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "history_id": self.history_id, "reason": self.reason}


@dataclass
class Verification:
    cases: int = 0
    rows: int = 0
    broken: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.broken

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "cases": self.cases,
            "rows": self.rows,
            "broken": [b.to_dict() for b in self.broken],
        }


def _load(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _at(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _rows(engine: Engine, case_id: int | None) -> Iterator[tuple[Any, ...]]:
    where = "WHERE h.case_id = :case_id" if case_id is not None else ""
    sql = text(
        "SELECT h.case_id, h.id, h.event, h.from_state, h.to_state, h.actor, h.at, h.data, h.flow_run_id, "
        f"h.prev_hash, h.hash, c.history_hash FROM history h JOIN recruitment_case c ON c.id = h.case_id {where} "
        "ORDER BY h.case_id, h.id"
    )
    with engine.connect() as conn:
        yield from conn.execute(sql, {"case_id": case_id} if case_id is not None else {})


def verify(engine: Engine, case_id: int | None = None) -> Verification:
    """Recompute the hash chain of every case (or one); report the first broken row of each."""
    result = Verification()
    current: int | None = None
    prev: str | None = None
    last_of_case: str | None = None
    broken_case = False

    def close() -> None:
        if current is not None and not broken_case and prev != last_of_case:
            result.broken.append(Break(current, None, "the case's last recorded hash is not its last row's"))

    for case, hid, event, src, dst, actor, at, data, run, prev_hash, stored, case_hash in _rows(engine, case_id):
        if case != current:
            close()
            current, prev, last_of_case, broken_case = case, None, case_hash, False
            result.cases += 1
        result.rows += 1
        if broken_case:
            continue
        expected = row_hash(
            case_id=case,
            event=event,
            from_state=src,
            to_state=dst,
            actor=actor,
            at=_at(at),
            data=_load(data),
            flow_run_id=run,
            prev_hash=prev,
        )
        if prev_hash != prev:
            result.broken.append(Break(case, hid, "its link to the previous row does not match (a row was removed)"))
            broken_case = True
        elif stored != expected:
            result.broken.append(Break(case, hid, "its content does not match its hash (the row was changed)"))
            broken_case = True
        prev = stored
    close()
    return result
