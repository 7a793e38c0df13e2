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
    created_by: str | None = None,
) -> str:
    """Return the hash of one history row, chained to the previous one of its case.

    ``created_by`` counts only when known: the rows written before it existed keep their hashes.
    """
    content: dict[str, Any] = {
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
    if created_by is not None:
        content["created_by"] = created_by
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def chained_row(
    key: str,
    owner_id: int,
    prev_hash: str | None,
    *,
    event: str,
    from_state: str | None,
    to_state: str,
    actor: str,
    at: datetime,
    data: dict[str, Any],
    flow_run_id: str | None,
    created_by: str | None = None,
) -> dict[str, Any]:
    """Return a history row (its owner under ``key``) with its hash, chained to ``prev_hash``.

    ``created_by`` (who created the flow run) is a column of the cases' history only: given only when known.
    """
    content: dict[str, Any] = {
        "event": event,
        "from_state": from_state,
        "to_state": to_state,
        "actor": actor,
        "at": at,
        "data": data,
        "flow_run_id": flow_run_id,
    }
    if created_by is not None:
        content["created_by"] = created_by
    digest = row_hash(case_id=owner_id, prev_hash=prev_hash, **content)
    return {key: owner_id, **content, "prev_hash": prev_hash, "hash": digest}


#: Where a chained history lives: its table, the table of the rows it belongs to, and the key that links them.
CASES = ("history", "recruitment_case", "case_id")


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


def flag_broken(view: dict[str, Any], verification: Verification) -> dict[str, Any]:
    """Add to a view (a case, an application) that its history was rewritten, where: only when it was."""
    if verification.broken:
        first = verification.broken[0]
        where = f"row {first.history_id}" if first.history_id is not None else "its end"
        view["history_intact"] = False
        view["history_broken"] = f"{where}: {first.reason}"
    return view


def _load(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _at(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _rows(engine: Engine, case_id: int | None, chain: tuple[str, str, str]) -> Iterator[tuple[Any, ...]]:
    history, owner, key = chain
    where = f"WHERE h.{key} = :case_id" if case_id is not None else ""
    creator = "h.created_by" if chain == CASES else "NULL"  # only the cases' history records it
    sql = text(
        f"SELECT h.{key}, h.id, h.event, h.from_state, h.to_state, h.actor, h.at, h.data, h.flow_run_id, "
        f"h.prev_hash, h.hash, c.history_hash, {creator} FROM {history} h JOIN {owner} c ON c.id = h.{key} {where} "
        f"ORDER BY h.{key}, h.id"
    )
    with engine.connect() as conn:
        yield from conn.execute(sql, {"case_id": case_id} if case_id is not None else {})


def verify(engine: Engine, case_id: int | None = None, chain: tuple[str, str, str] = CASES) -> Verification:
    """Recompute the hash chain of every case (or one); report the first broken row of each.

    ``chain`` names another chained history (a structure's application) by its tables (constants, never input).
    """
    result = Verification()
    current: int | None = None
    prev: str | None = None
    last_of_case: str | None = None
    broken_case = False

    def close() -> None:
        if current is not None and not broken_case and prev != last_of_case:
            result.broken.append(Break(current, None, "the case's last recorded hash is not its last row's"))

    for case, hid, event, src, dst, actor, at, data, run, prev_hash, stored, case_hash, creator in _rows(
        engine, case_id, chain
    ):
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
            created_by=creator,
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
