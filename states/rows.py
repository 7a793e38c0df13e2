"""The rows of a transition: a case read with its structure and candidate, a case written or inserted.

A transition reads and writes the same few rows every time; these functions do it with the statements
compiled once and run on the driver's cursor (``states.prepared``), in the caller's transaction. The
objects are the models' own (``Case``, ``Structure``, ``Candidate``), made as the ORM makes them from a
row, so that the domain reads and changes them as any model; the case is written back by ``write_case``,
whole and guarded by its version.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Table, bindparam, insert, inspect, update
from sqlalchemy.orm import Mapper, configure_mappers
from sqlalchemy.orm.attributes import instance_state
from sqlmodel import Session, col, select

from states import prepared, writes
from states.errors import NotFound
from states.models import Candidate, Case, Structure

_CASE_TABLE: Table = Case.__table__  # type: ignore[attr-defined]
_STRUCTURE_TABLE: Table = Structure.__table__  # type: ignore[attr-defined]
_CANDIDATE_TABLE: Table = Candidate.__table__  # type: ignore[attr-defined]
#: a case with its structure and candidate, as plain columns (``states.prepared`` runs it on the driver)
_LOAD_CASE = (
    select(*_CASE_TABLE.c, *_STRUCTURE_TABLE.c, *_CANDIDATE_TABLE.c)
    .join_from(_CASE_TABLE, _STRUCTURE_TABLE, _STRUCTURE_TABLE.c.id == _CASE_TABLE.c.structure_id)
    .join(_CANDIDATE_TABLE, _CANDIDATE_TABLE.c.id == _CASE_TABLE.c.candidate_id)
    .where(_CASE_TABLE.c.id == bindparam("case_id"))
)
_LOAD_CASE_LOCKED = _LOAD_CASE.with_for_update(of=_CASE_TABLE)
#: each model of the loaded row, with its columns' names, in the row's order
_LOADED = tuple(
    (model, tuple(c.name for c in table.c))
    for model, table in ((Case, _CASE_TABLE), (Structure, _STRUCTURE_TABLE), (Candidate, _CANDIDATE_TABLE))
)
#: The row lock of a case's candidate, taken before the case's own (see ``load_case``).
_LOCK_CANDIDATE_OF_CASE = (
    select(Candidate.id)
    .join(Case, col(Case.candidate_id) == col(Candidate.id))
    .where(col(Case.id) == bindparam("case_id"))
    .with_for_update(of=Candidate)
)

#: The columns a transition may change: all but the key, the version and the two parties.
_CASE_FIELDS = tuple(c.name for c in _CASE_TABLE.c if c.name not in ("id", "version", "structure_id", "candidate_id"))
_CASE_FIELD_SET = frozenset(_CASE_FIELDS)
_CASE_BINDS = tuple((name, f"b_{name}") for name in _CASE_FIELDS)
SET_CHAIN_END = (
    update(_CASE_TABLE).where(_CASE_TABLE.c.id == bindparam("case_id")).values(history_hash=bindparam("history_hash"))
)
_WRITE_CASE = (
    update(_CASE_TABLE)
    .where(_CASE_TABLE.c.id == bindparam("b_id"), _CASE_TABLE.c.version == bindparam("b_version"))
    .values({**{name: bindparam(f"b_{name}") for name in _CASE_FIELDS}, "version": bindparam("b_version") + 1})
)


def load_case(session: Session, case_id: int, *, lock: bool = False) -> tuple[Case, Structure, Candidate]:
    """Return a case with its structure and candidate, in one query; ``lock`` takes the row lock.

    Lock order (PostgreSQL): the candidate's row, then the case's, then the structure's (``within_quota``),
    then the candidate's other cases (signing withdraws them). Every transition takes them in that order,
    so that two signings of one candidate, each closing the other's case, wait for each other instead of
    deadlocking: the second finds its case withdrawn and is refused. The batch runs lock cases only
    (``SKIP LOCKED``) and fire no event that takes a candidate's or a structure's lock. SQLite needs no
    row lock: its write transactions run one at a time.
    """
    if lock and session.get_bind().dialect.name != "sqlite":
        prepared.first(session, _LOCK_CANDIDATE_OF_CASE, {"case_id": case_id})
    with session.no_autoflush:  # the effects write through Core: nothing of the ORM's is left to write first
        row = prepared.first(session, _LOAD_CASE_LOCKED if lock else _LOAD_CASE, {"case_id": case_id})
    if row is None:
        raise NotFound(f"case {case_id} does not exist: `conum list` shows the cases")
    loaded = []
    start = 0
    for model, names in _LOADED:
        end = start + len(names)
        loaded.append(_persistent(session, model, dict(zip(names, row[start:end], strict=True))))
        start = end
    case, structure, candidate = loaded
    return case, structure, candidate


@cache
def _mapper(model: Any) -> Mapper[Any]:
    configure_mappers()  # as the ORM's first query would (the attributes' instrumentation)
    return inspect(model)


def _persistent(session: Session, model: Any, values: dict[str, Any]) -> Any:
    """The object of a row just read: the one the session holds already, else one made from ``values``.

    What the ORM does when it loads a row, without its result machinery: an object the session holds is
    returned as it is; else a new one is made as the ORM makes it (no ``__init__``), with the row's identity.
    That one is left out of the session (detached): a transition writes the case itself, through
    ``write_case``, and nothing else of it; a later read in the same session reads the row again.
    """
    mapper = _mapper(model)
    key = mapper.identity_key_from_primary_key((values["id"],))
    held = session.identity_map.get(key)
    if held is not None:
        return held
    obj = mapper.class_manager.new_instance()
    obj.__dict__.update(values)
    instance_state(obj).key = key
    return obj


#: a structure or a candidate by its key, as plain columns (``_get``)
_BY_ID = {
    i: select(*table.c).where(table.c.id == bindparam("row_id"))
    for i, table in ((1, _STRUCTURE_TABLE), (2, _CANDIDATE_TABLE))
}
_INSERT_CASE = insert(_CASE_TABLE).returning(_CASE_TABLE.c.id)
_CASE_COLUMNS = tuple(c.name for c in _CASE_TABLE.c if c.name != "id")


def get_row(session: Session, which: int, row_id: int) -> Any:
    """The structure (``which`` 1) or candidate (2) of key ``row_id``, or None; read as ``load_case`` reads."""
    model, names = _LOADED[which]
    row = prepared.first(session, _BY_ID[which], {"row_id": row_id})
    return None if row is None else _persistent(session, model, dict(zip(names, row, strict=True)))


def insert_case(session: Session, case: Case) -> None:
    """Insert a new case row with all its columns; the object then holds its key, as once flushed."""
    state = instance_state(case)
    loaded = state.dict
    row = prepared.first(session, _INSERT_CASE, {name: loaded.get(name) for name in _CASE_COLUMNS})
    if row is None:
        raise RuntimeError("the new case's key was not returned")
    loaded["id"] = row[0]
    state.key = _mapper(Case).identity_key_from_primary_key((row[0],))
    state._commit_all(loaded)


def write_case(session: Session, case: Case) -> None:
    """Write the whole case row and move its version, in one UPDATE guarded by the version it was read at.

    What the ORM's flush of a versioned row does, as one prepared statement: the object is then marked
    as written (no second UPDATE at the next flush). Raises ``Conflict`` when another transaction moved
    the version meanwhile.
    """
    state = instance_state(case)
    loaded = state.dict
    version = case.version
    values = {bind: loaded[name] if name in loaded else getattr(case, name) for name, bind in _CASE_BINDS}
    with session.no_autoflush:  # else the session would first write the case itself
        writes.write(
            session,
            _WRITE_CASE,
            {**values, "b_id": case.id, "b_version": version},
            conflict=f"case {case.id} was changed by someone else meanwhile: read it again and retry",
        )
    # every column a transition changes is written: the object is as its row now, nothing left to flush
    # (marked at once as the session marks a row it has flushed, rather than column by column)
    if not state.committed_state.keys() <= _CASE_FIELD_SET:
        raise RuntimeError(f"a transition changed {sorted(state.committed_state)}: only {_CASE_FIELDS} are written")
    loaded["version"] = version + 1
    state._commit_all(loaded, state._instance_dict())
