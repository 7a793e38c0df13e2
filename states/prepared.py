"""The statements of a transition, compiled once and run on the driver's own cursor.

A transition runs the same few statements every time: load the case with its
structure and candidate, write the case guarded by its version, insert its
history row and its outbox rows. Through SQLAlchemy's execution path each of
them costs several times what the driver itself takes (a transition through it
was about seven times the same statements in plain SQL). ``Prepared`` keeps
what SQLAlchemy compiled for the dialect — the SQL text, the order of the
parameters, each column type's conversion of a value to and from the database —
and runs it on the cursor of the session's own connection, in the session's
transaction. Nothing else changes: the same text, the same conversions, the same
transaction; a driver error goes through SQLAlchemy's handling (the same
exception classes, a lost connection invalidated), and the listeners of
``before_cursor_execute`` still see each statement.

A statement it cannot run this way (a default computed in Python at execution,
an expanding ``IN``) is refused when it is prepared: ``compile_for``
returns None and the caller runs it through SQLAlchemy.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from sqlalchemy import Connection, Dialect
from sqlalchemy.sql import ClauseElement, Executable
from sqlmodel import Session

Params = Mapping[str, Any]
_NO_DEFAULT = object()


class Prepared:
    """One statement compiled for one dialect and one set of parameter names."""

    __slots__ = ("binds", "columns", "positional", "sql")

    def __init__(
        self,
        sql: str,
        positional: bool,
        binds: tuple[tuple[str, Callable[[Any], Any] | None, Any], ...],
        columns: tuple[Callable[[Any], Any] | None, ...],
    ) -> None:
        self.sql, self.positional, self.binds, self.columns = sql, positional, binds, columns

    def convert(self, params: Params, before: tuple[Params, list[Any]] | None = None) -> list[Any]:
        """The values of ``params``, in the statement's order, each converted as its column's type says.

        ``before`` is the previous parameter set of an ``executemany`` with its converted values: a value
        that is the very same object as there (the payload every recipient of a notification shares) is
        not converted again.
        """
        values = []
        for i, (name, process, default) in enumerate(self.binds):
            value = params.get(name, default) if default is not _NO_DEFAULT else params[name]
            if process is None or value is None:
                values.append(value)
            elif before is not None and before[0].get(name, _NO_DEFAULT) is value:
                values.append(before[1][i])
            else:
                values.append(process(value))
        return values

    def shape(self, values: list[Any]) -> Any:
        """The driver's parameters: a tuple (``?``) or a dict (``%(name)s``)."""
        if self.positional:
            return tuple(values)
        return {name: value for (name, _, _), value in zip(self.binds, values, strict=True)}

    def parameters(self, params: Params) -> Any:
        """The driver's parameters for ``params``."""
        return self.shape(self.convert(params))

    def row(self, raw: Sequence[Any]) -> list[Any]:
        """A result row converted as SQLAlchemy converts it (dates read back from SQLite's text, say)."""
        return [v if p is None or v is None else p(v) for p, v in zip(self.columns, raw, strict=True)]


#: compiled statements, by the statement's identity: the statement is held with its entry, so that its
#: identity is not another's while the entry lives; the least recently used go beyond ``_CACHE_SIZE``
_CACHE: OrderedDict[tuple[int, str, tuple[str, ...]], tuple[Executable, Prepared | None]] = OrderedDict()
_CACHE_SIZE = 256


def compile_for(statement: Executable, dialect: Dialect, keys: tuple[str, ...]) -> Prepared | None:
    """Compile ``statement`` for ``dialect`` with the parameters ``keys``; None if it cannot run as is."""
    cache_key = (id(statement), dialect.name, keys)
    entry = _CACHE.get(cache_key)
    if entry is not None and entry[0] is statement:
        _CACHE.move_to_end(cache_key)
        return entry[1]
    prepared = _compile(statement, dialect, keys)
    _CACHE[cache_key] = (statement, prepared)
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return prepared


def _compile(statement: Executable, dialect: Dialect, keys: tuple[str, ...]) -> Prepared | None:
    assert isinstance(statement, ClauseElement)
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys))
    if compiled.has_out_parameters or getattr(compiled, "_numeric_binds", False):
        return None
    if any(b.expanding for b in compiled.binds.values()):
        return None
    defaults: dict[str, Any] = {}
    for column in (*getattr(compiled, "insert_prefetch", ()), *getattr(compiled, "update_prefetch", ())):
        column_default = column.default
        if column_default is None or not column_default.is_scalar:
            return None  # computed at execution: leave it to SQLAlchemy
        defaults[column.key] = column_default.arg
    processors = compiled._bind_processors
    names = compiled.positiontup if dialect.positional else list(compiled.bind_names.values())
    binds = []
    # positional: one value per placeholder, a name used twice given twice; named: each name once
    for name in names if dialect.positional else dict.fromkeys(names):
        bind = compiled.binds[name]
        if name in keys:
            default: Any = _NO_DEFAULT
        elif name in defaults:
            default = defaults[name]
        elif bind.callable is None and bind.value is not None:
            default = bind.value  # a literal of the statement (``version + 1``)
        else:
            return None
        binds.append((name, processors.get(name), default))
    columns: list[Callable[[Any], Any] | None] = []
    for entry in compiled._result_columns or ():
        kind = entry[3]
        columns.append(kind._cached_result_processor(dialect, None))
    return Prepared(compiled.string, bool(dialect.positional), tuple(binds), tuple(columns))


_CONNECTION = "conum.connection"


class _Held:
    """The connection of a session's transaction, and its ``before_cursor_execute`` listeners, asked once."""

    __slots__ = ("conn", "listeners", "transaction")

    def __init__(self, transaction: Any, conn: Connection) -> None:
        self.transaction, self.conn = transaction, conn
        self.listeners = list(conn.dispatch.before_cursor_execute)


def _held(session: Session) -> _Held:
    transaction = session.get_transaction()
    held = session.info.get(_CONNECTION)
    if transaction is None or held is None or held.transaction is not transaction:
        conn = session.connection()  # begins the session's transaction if it has not begun
        held = session.info[_CONNECTION] = _Held(session.get_transaction(), conn)
    return held


def _new_cursor(conn: Connection) -> Any:
    """A cursor of the driver's connection; a failure (the connection gone) goes through SQLAlchemy's handling."""
    try:
        return _driver(conn).cursor()
    except BaseException as exc:
        _raise(conn, exc, None, None, None)


def _raise(conn: Connection, exc: BaseException, sql: str | None, params: Any, cursor: Any) -> NoReturn:
    if isinstance(exc, Exception) and not isinstance(exc, conn.dialect.loaded_dbapi.Error):
        raise exc  # a value the driver cannot take (an int too large): as it comes, as through SQLAlchemy
    # SQLAlchemy's own handling: the same exception classes, a lost or interrupted connection invalidated
    conn._handle_dbapi_exception(exc, sql, params, cursor, None)


def _driver(conn: Connection) -> Any:
    """The driver's own connection under ``conn`` (``sqlite3`` or ``psycopg``)."""
    driver = conn.connection.driver_connection
    if driver is None:
        raise RuntimeError("the connection is closed")
    return driver


def _run(conn: Connection, cursor: Any, sql: str, params: Any, many: bool, listeners: list[Any] | None = None) -> None:
    """Run on the cursor as SQLAlchemy would: its listeners first, any error through its handling."""
    try:
        for listener in conn.dispatch.before_cursor_execute if listeners is None else listeners:
            listener(conn, cursor, sql, params, None, many)
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
    except BaseException as exc:
        _raise(conn, exc, sql, params, cursor)


def _close(cursor: Any) -> None:
    """Close a cursor, as SQLAlchemy does, ignoring a failure: the connection under it may be gone (the
    statement's own error, already raised, says so)."""
    with contextlib.suppress(Exception):  # as SQLAlchemy's own closing of a cursor
        cursor.close()


def run_text(conn: Connection, sql: str) -> None:
    """Run a statement without parameters (``BEGIN IMMEDIATE``) on the driver directly."""
    cursor = _new_cursor(conn)
    try:
        _run(conn, cursor, sql, (), False)
    finally:
        _close(cursor)


def execute(session: Session, statement: Executable, params: Params | Sequence[Params]) -> int | None:
    """Run a write with ``params`` (one set, or several as one ``executemany``); return the rows it changed.

    None when the statement cannot run on the driver directly: the caller runs it through SQLAlchemy.
    """
    many = not isinstance(params, Mapping)
    rows: Sequence[Params] = params if many else [params]  # type: ignore[list-item,assignment]
    if not rows:
        return 0
    held = _held(session)
    conn = held.conn
    prepared = compile_for(statement, conn.dialect, tuple(rows[0]))
    if prepared is None:
        return None
    cursor = _new_cursor(conn)
    try:
        if many:
            converted = []
            previous: tuple[Params, list[Any]] | None = None
            for r in rows:
                values = prepared.convert(r, previous)
                previous = (r, values)
                converted.append(prepared.shape(values))
            _run(conn, cursor, prepared.sql, converted, True, held.listeners)
        else:
            _run(conn, cursor, prepared.sql, prepared.parameters(rows[0]), False, held.listeners)
        return int(cursor.rowcount)
    finally:
        _close(cursor)


def first(session: Session, statement: Executable, params: Params) -> list[Any] | None:
    """The first row of a query, converted as SQLAlchemy converts it, or None."""
    found = _query(session, statement, params, one=True)
    if found is None:
        raise ValueError("this query cannot run on the driver directly")
    return found[0] if found else None


def rows(session: Session, statement: Executable, params: Params) -> list[list[Any]] | None:
    """Every row of a query, converted as SQLAlchemy converts them; None if it cannot run on the driver."""
    return _query(session, statement, params, one=False)


def _query(session: Session, statement: Executable, params: Params, one: bool) -> list[list[Any]] | None:
    held = _held(session)
    conn = held.conn
    prepared = compile_for(statement, conn.dialect, tuple(params))
    if prepared is None:
        return None
    cursor = _new_cursor(conn)
    try:
        _run(conn, cursor, prepared.sql, prepared.parameters(params), False, held.listeners)
        raw = cursor.fetchmany(1) if one else cursor.fetchall()
    finally:
        _close(cursor)
    return [prepared.row(r) for r in raw]
