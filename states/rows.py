"""The rows of a transition: a case read with its structure and candidate, a case written or inserted.

A transition reads and writes the same few rows every time; these functions do it with the statements
compiled once and run on the driver's cursor (``states.prepared``), in the caller's transaction. The
objects are the models' own (``Case``, ``Structure``, ``Candidate``), made as the ORM makes them from a
row, so that the domain reads and changes them as any model; the case is written back by ``CASE.write``:
the columns it changed, guarded by its version.
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
#: The row lock of a case's candidate, taken before the case's own (see ``load_case``).
_LOCK_CANDIDATE_OF_CASE = (
    select(Candidate.id)
    .join(Case, col(Case.candidate_id) == col(Candidate.id))
    .where(col(Case.id) == bindparam("case_id"))
    .with_for_update(of=Candidate)
)

SET_CHAIN_END = (
    update(_CASE_TABLE).where(_CASE_TABLE.c.id == bindparam("case_id")).values(history_hash=bindparam("history_hash"))
)


class Versioned:
    """How a versioned row is written: one UPDATE guarded by the version it was read at, which it moves.

    A transition writes the columns it changed, as the ORM's flush does: one statement per set of
    columns, built once. Any other column (the key, the version, ``fixed``) changed is refused.
    """

    def __init__(self, table: Table, what: str, fixed: tuple[str, ...]) -> None:
        self.what = what
        self.fields = tuple(c.name for c in table.c if c.name not in ("id", "version", *fixed))
        self.field_set = frozenset(self.fields)
        self.binds = tuple((name, f"b_{name}") for name in self.fields)
        self.table = table
        self._by_columns: dict[frozenset[str], tuple[Any, tuple[tuple[str, str], ...]]] = {}

    def _changed(self, names: frozenset[str]) -> tuple[Any, tuple[tuple[str, str], ...]]:
        """The UPDATE of the columns ``names`` (and the version), built once per set of columns."""
        found = self._by_columns.get(names)
        if found is None:
            binds = tuple((name, bind) for name, bind in self.binds if name in names)
            table = self.table
            statement = (
                update(table)
                .where(table.c.id == bindparam("b_id"), table.c.version == bindparam("b_version"))
                .values({**{name: bindparam(bind) for name, bind in binds}, "version": bindparam("b_version") + 1})
            )
            found = self._by_columns[names] = (statement, binds)
        return found

    def write(self, session: Session, obj: Any) -> None:
        """Write the columns of ``obj`` a transition changed and move its version; ``Conflict`` if another
        transaction moved it.

        What the ORM's flush of a versioned row does, as one prepared statement: the object is then marked
        as written (no second UPDATE at the next flush).
        """
        state = instance_state(obj)
        loaded = state.dict
        version = obj.version
        changed = state.committed_state.keys()
        if not changed <= self.field_set:
            raise RuntimeError(f"a transition changed {sorted(changed)}: only {self.fields} are written")
        statement, binds = self._changed(frozenset(changed))  # the columns it changed, as the ORM writes them
        values = {bind: loaded[name] if name in loaded else getattr(obj, name) for name, bind in binds}
        with session.no_autoflush:  # else the session would first write the object itself
            writes.write(
                session,
                statement,
                {**values, "b_id": obj.id, "b_version": version},
                conflict=f"{self.what} {obj.id} was changed by someone else meanwhile: read it again and retry",
            )
        # every column the transition changed is written: the object is as its row now, nothing left to flush
        # (marked at once as the session marks a row it has flushed, rather than column by column)
        loaded["version"] = version + 1
        state._commit_all(loaded, state._instance_dict())


#: a case is written by its transitions; its two parties never change
CASE = Versioned(_CASE_TABLE, "case", ("structure_id", "candidate_id"))


def read_objects(session: Session, statement: Any, params: dict[str, Any], models: tuple[Any, ...]) -> list[Any] | None:
    """Run a query of plain columns (each model's, in order) on the driver; return one object per model.

    None when no row is found.
    """
    with session.no_autoflush:  # the effects write through Core: nothing of the ORM's is left to write first
        row = prepared.first(session, statement, params)
    return None if row is None else _objects(session, row, models)


def read_all(
    session: Session, statement: Any, params: dict[str, Any], models: tuple[Any, ...]
) -> list[list[Any]] | None:
    """Every row of a query of plain columns, each as one object per model; None if the query cannot run
    on the driver directly (the caller then runs it through the ORM)."""
    with session.no_autoflush:
        found = prepared.rows(session, statement, params)
    if found is None:
        return None
    seen: dict[tuple[Any, Any], Any] = {}  # one object per row, as the ORM's identity map gives
    return [_objects(session, row, models, seen) for row in found]


def columns(*models: Any) -> list[Any]:
    """The columns of ``models``, in order: what ``read_objects`` and ``read_all`` expect of a query."""
    return [c for model in models for c in model.__table__.c]


def _objects(
    session: Session, row: list[Any], models: tuple[Any, ...], seen: dict[tuple[Any, Any], Any] | None = None
) -> list[Any]:
    """One object per model of ``row``; ``seen`` holds those already made for the same query."""
    found = []
    start = 0
    for model in models:
        names = _names(model)
        end = start + len(names)
        obj = None if seen is None else seen.get((model, row[start]))  # the key comes first
        if obj is None:
            obj = _persistent(session, model, dict(zip(names, row[start:end], strict=True)))
            if seen is not None:
                seen[model, row[start]] = obj
        found.append(obj)
        start = end
    return found


@cache
def _names(model: Any) -> tuple[str, ...]:
    """The columns of ``model``'s table, in order: its key first (``_objects`` relies on it)."""
    names = tuple(c.name for c in model.__table__.c)
    if names[0] != "id":
        raise RuntimeError(f"{model.__name__}: the key must be the first column, not {names[0]}")
    return names


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
    found = read_objects(
        session, _LOAD_CASE_LOCKED if lock else _LOAD_CASE, {"case_id": case_id}, (Case, Structure, Candidate)
    )
    if found is None:
        raise NotFound(f"case {case_id} does not exist: `conum list` shows the cases")
    case, structure, candidate = found
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
    ``Versioned.write``, and nothing else of it; a later read in the same session reads the row again.
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


#: a structure or a candidate by its key, as plain columns (``get_row``)
_BY_ID: dict[Any, Any] = {
    Structure: select(*_STRUCTURE_TABLE.c).where(_STRUCTURE_TABLE.c.id == bindparam("row_id")),
    Candidate: select(*_CANDIDATE_TABLE.c).where(_CANDIDATE_TABLE.c.id == bindparam("row_id")),
}


_INSERT_CASE = insert(_CASE_TABLE).returning(_CASE_TABLE.c.id)
_CASE_COLUMNS = tuple(c.name for c in _CASE_TABLE.c if c.name != "id")


def get_row(session: Session, model: Any, row_id: int) -> Any:
    """The structure or candidate of key ``row_id``, or None; read as ``load_case`` reads."""
    found = read_objects(session, _BY_ID[model], {"row_id": row_id}, (model,))
    return None if found is None else found[0]


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
