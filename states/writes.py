"""The writes of a transition, run at once or gathered for a whole batch chunk.

A transition writes through ``write``: the case row (guarded by its version),
its history row, its outbox rows, a tranche paid (guarded by its status). Out
of a batch run each statement runs at once, as it always did. A batch run
(``states.batch``) opens ``deferred`` around a chunk: the same statements are
then gathered, in order, and ``Chunk.flush`` runs them at the end of the chunk,
in the chunk's transaction: each table's in the order they came, one
``executemany`` per run of the same statement. The guards stay: a guarded
statement must change exactly one row per parameter set, and the chunk checks
the sum (``ChunkConflict`` if not; the
batch run then rolls the chunk back and does it again case by case, so that the
changed case is named and nothing is written twice).

What a deferred transition reads is in memory (the case and its tranches,
loaded and locked for the chunk); nothing in the chunk reads back a row a
pending statement writes. Each table's rows are inserted in the order the
transitions came, so that their keys are the same as when each ran at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.sql import Executable
from sqlmodel import Session

from states import prepared
from states.errors import Conflict

_KEY = "conum.deferred_writes"

Params = Mapping[str, Any]


class ChunkConflict(Conflict):
    """A guarded statement of a chunk changed fewer rows than it had parameter sets: a row moved meanwhile."""


@dataclass
class Chunk:
    """The writes of one batch chunk, in the order the transitions made them."""

    #: each write: the statement, its parameter sets, and whether each set must change exactly one row
    log: list[tuple[Executable, list[Params], bool]] = field(default_factory=list)

    def add(self, statement: Executable, params: Params | Sequence[Params], guarded: bool) -> None:
        rows = [params] if isinstance(params, Mapping) else list(params)
        if rows:
            self.log.append((statement, rows, guarded))

    def mark(self) -> int:
        """Where the writes stand now (``undo`` goes back there: a case whose transition failed)."""
        return len(self.log)

    def undo(self, mark: int) -> None:
        del self.log[mark:]

    def __len__(self) -> int:
        return sum(len(rows) for _, rows, _ in self.log)

    def flush(self, session: Session) -> None:
        """Run the gathered writes: each table's in the order they came, one ``executemany`` per run of
        writes of the same statement (the whole chunk's, when its transitions wrote alike).

        Raises ``ChunkConflict`` when a guarded statement changed fewer rows than it had parameter sets.
        """
        by_table: dict[Any, list[tuple[Executable, list[Params], bool]]] = {}
        for statement, rows, guarded in self.log:
            runs = by_table.setdefault(getattr(statement, "table", statement), [])
            if runs and runs[-1][0] is statement:
                runs[-1][1].extend(rows)
            else:
                runs.append((statement, list(rows), guarded))
        self.log.clear()
        with session.no_autoflush:
            for runs in by_table.values():
                for statement, rows, guarded in runs:
                    changed = _execute(session, statement, rows)
                    if guarded and changed != len(rows):
                        raise ChunkConflict(
                            f"{len(rows) - changed} row(s) of this chunk were changed by someone else "
                            "meanwhile: the chunk is rolled back"
                        )


def pending(session: Session) -> Chunk | None:
    """The chunk whose writes ``session`` is gathering, or None (each write runs at once)."""
    chunk = session.info.get(_KEY)
    return chunk if isinstance(chunk, Chunk) else None


def write(session: Session, statement: Executable, params: Params | Sequence[Params], conflict: str = "") -> None:
    """Run a write now, or gather it when ``session`` is deferring a chunk's writes.

    With ``conflict``, each parameter set must change exactly one row (the statement is guarded by a
    version or a status); run at once, a miss raises ``Conflict(conflict)``, gathered, the chunk's flush
    checks the count.
    """
    chunk = pending(session)
    if chunk is not None:
        chunk.add(statement, params, bool(conflict))
        return
    changed = _execute(session, statement, params)
    if conflict and changed != (1 if isinstance(params, Mapping) else len(params)):
        raise Conflict(conflict)


def _execute(session: Session, statement: Executable, params: Params | Sequence[Params]) -> int:
    """Run a write on the driver directly (``states.prepared``), else as a Core statement; return its row count."""
    changed = prepared.execute(session, statement, params)
    if changed is None:
        changed = session.connection().execute(statement, params).rowcount
    return changed


def flush_pending(session: Session) -> None:
    """Run the gathered writes now (before a statement whose result is needed at once)."""
    chunk = pending(session)
    if chunk is not None:
        chunk.flush(session)


@contextmanager
def deferred(session: Session) -> Iterator[Chunk]:
    """Gather the writes made through ``write`` on ``session`` until the block ends; the caller flushes them."""
    if pending(session) is not None:
        raise RuntimeError("this session already gathers a chunk's writes")
    chunk = Chunk()
    session.info[_KEY] = chunk
    try:
        yield chunk
    finally:
        session.info.pop(_KEY, None)
