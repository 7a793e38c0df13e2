"""The transition's statements run on the driver's cursor (``states.prepared``, ``states.rows``).

What they write must read back through SQLAlchemy exactly as if SQLAlchemy had written it, a driver
error must come out as SQLAlchemy's own exception (so that the refusals stay the same), and the
listeners of each statement must still see it. On SQLite and on PostgreSQL (skipped when no server
answers).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import migrated_pg_database
from sqlalchemy import Engine, event, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm.attributes import instance_state
from sqlmodel import Session

from states import prepared, registry, rows, service
from states.clock import parse_instant
from states.db import get_engine, migrate, write_session
from states.errors import Conflict
from states.models import Case, Outbox, Tranche
from states.policy import Policy

AT = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated database on SQLite, or of its own on the PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'conum.db'}"
        migrate(url)
        yield get_engine(url)
        return
    with migrated_pg_database("conum_prepared") as url:
        yield get_engine(url)


def _case(engine: Engine) -> int:
    with write_session(engine) as s:
        structure = registry.add_structure(s, name="Médiathèque", departement="33", posts=2)
        candidate = registry.add_candidate(s, name="Camille Durand", email="camille@exemple.fr")
        return service.present(s, structure, candidate, at=parse_instant("2026-03-01T10:00"), policy=Policy()).id or 0


def test_a_row_written_on_the_driver_reads_back_as_sqlalchemy_wrote_it(any_engine: Engine) -> None:
    case_id = _case(any_engine)
    payload = {"name": "Zoé <b>l'Haÿ</b> {0} %s", "amount_cents": 5_000_000, "nested": {"when": "2026-03-02"}}
    with write_session(any_engine) as s:
        written = prepared.execute(
            s,
            insert(Outbox.__table__),  # type: ignore[attr-defined]
            [
                {"case_id": case_id, "kind": "k", "recipient": r, "payload": payload, "created_at": AT,
                 "next_attempt_at": AT}
                for r in ("structure", "candidate")
            ],
        )  # fmt: skip
        assert written == 2
        tranche = {"case_id": case_id, "number": 1, "amount_cents": 1234, "due_on": date(2026, 12, 31)}
        assert prepared.execute(s, insert(Tranche.__table__), tranche) == 1  # type: ignore[attr-defined]
    with Session(any_engine) as s:
        sent = s.exec(select(Outbox).where(Outbox.kind == "k").order_by(Outbox.id)).all()  # type: ignore[arg-type]
        assert [o[0].payload for o in sent] == [payload, payload]
        assert {o[0].created_at for o in sent} == {AT}
        assert [o[0].status for o in sent] == ["pending", "pending"]  # the column's default
        got = s.exec(select(Tranche).where(Tranche.case_id == case_id)).one()[0]  # type: ignore[arg-type]
        assert (got.due_on, got.amount_cents, got.status) == (date(2026, 12, 31), 1234, "scheduled")


def test_a_case_read_on_the_driver_equals_the_orms(any_engine: Engine) -> None:
    case_id = _case(any_engine)
    with write_session(any_engine) as s:
        service.fire(s, case_id, "select", at=parse_instant("2026-03-03T10:00"), policy=Policy())
    with Session(any_engine) as s:
        case, structure, candidate = rows.load_case(s, case_id)
        fast = case.model_dump()
    with Session(any_engine) as s:
        orm = s.get(Case, case_id)
        assert orm is not None
        assert fast == orm.model_dump()
    assert fast["clock_start"].tzinfo is not None and fast["version"] == 2
    assert (structure.name, candidate.name) == ("Médiathèque", "Camille Durand")


def test_a_driver_error_is_sqlalchemys_and_changes_nothing(any_engine: Engine) -> None:
    case_id = _case(any_engine)
    row: dict[str, Any] = {"case_id": case_id, "number": 1, "amount_cents": 1, "due_on": None}
    statement = insert(Tranche.__table__)  # type: ignore[attr-defined]
    with pytest.raises(IntegrityError), Session(any_engine) as s:
        prepared.execute(s, statement, row)
        prepared.execute(s, statement, row)  # the same (case, number) twice
    # and a write transaction says what already exists, as for any duplicate
    with (
        pytest.raises(Conflict, match=r"a tranche with .*case_id, number.* already exists"),
        write_session(any_engine) as s,
    ):
        prepared.execute(s, statement, row)
        prepared.execute(s, statement, row)
    with Session(any_engine) as s:
        assert s.exec(select(Tranche)).all() == []


def test_the_statement_listeners_see_every_statement(any_engine: Engine) -> None:
    case_id = _case(any_engine)
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement.split()[0].upper())

    event.listen(any_engine, "before_cursor_execute", listen)
    try:
        with write_session(any_engine) as s:
            service.fire(s, case_id, "select", at=parse_instant("2026-03-03T10:00"), policy=Policy())
    finally:
        event.remove(any_engine, "before_cursor_execute", listen)
    # the case read, its update, the outbox rows, the history row (and SQLite's BEGIN)
    assert {"SELECT", "UPDATE", "INSERT"} <= set(seen)
    assert seen.count("UPDATE") == 1


def test_a_version_moved_meanwhile_is_a_conflict_and_nothing_is_written(any_engine: Engine) -> None:
    case_id = _case(any_engine)
    with write_session(any_engine) as s:
        case, _, _ = rows.load_case(s, case_id, lock=True)
        stale_version = case.version
    with write_session(any_engine) as s:
        service.fire(s, case_id, "select", at=parse_instant("2026-03-03T10:00"), policy=Policy())
    with pytest.raises(Conflict, match="changed by someone else"), write_session(any_engine) as s:
        case, _, _ = rows.load_case(s, case_id)
        instance_state(case).committed_state.clear()
        case.__dict__["version"] = stale_version
        case.escalation_level = 3
        rows.CASE.write(s, case)
    with Session(any_engine) as s:
        after = s.get(Case, case_id)
        assert after is not None and after.escalation_level == 0 and after.version == stale_version + 1


def test_a_statement_the_driver_cannot_run_as_is_is_left_to_sqlalchemy() -> None:
    engine = get_engine("sqlite://")
    expanding = select(Case.id).where(Case.id.in_([1, 2]))  # type: ignore[union-attr]
    assert prepared.compile_for(expanding, engine.dialect, ()) is None


def test_the_compiled_statements_kept_are_bounded() -> None:
    engine = get_engine("sqlite://")
    for i in range(prepared._CACHE_SIZE + 50):
        prepared.compile_for(select(Case.id).where(Case.id == i), engine.dialect, ())
    assert len(prepared._CACHE) <= prepared._CACHE_SIZE


def test_the_faster_attribute_set_records_what_sqlmodels_does() -> None:
    from sqlmodel import SQLModel

    made = [Case(structure_id=1, candidate_id=2, state="selected", last_at=AT, presented_at=AT) for _ in range(2)]
    for case, setter in zip(made, (setattr, SQLModel.__setattr__), strict=True):
        instance_state(case)._commit_all(instance_state(case).dict)
        setter(case, "state", "in_post")
        setter(case, "escalation_level", 2)
    fast, slow = (instance_state(c) for c in made)
    assert fast.committed_state == slow.committed_state == {"state": "selected", "escalation_level": 0}
    assert made[0].model_dump() == made[1].model_dump()
    assert made[0].__pydantic_fields_set__ == made[1].__pydantic_fields_set__


@pytest.mark.parametrize("at_statement", [1, 2, 3, 4, 5])
def test_a_connection_lost_mid_transition_is_sqlalchemys_error_and_nothing_is_written(
    tmp_path: Path, at_statement: int
) -> None:
    url = f"sqlite:///{tmp_path / 'conum.db'}"
    migrate(url)
    engine = get_engine(url)
    case_id = _case(engine)
    count = [0]

    def lose(conn: Any, *_: Any) -> None:  # the connection closed under SQLAlchemy, as a crash of it would
        count[0] += 1
        if count[0] == at_statement:
            conn.connection.dbapi_connection.close()

    event.listen(engine, "before_cursor_execute", lose)
    try:
        with pytest.raises(SQLAlchemyError, match="closed database"), write_session(engine) as s:
            service.fire(s, case_id, "select", at=parse_instant("2026-03-03T10:00"), policy=Policy())
    finally:
        event.remove(engine, "before_cursor_execute", lose)
    with Session(engine) as s:
        case = s.get(Case, case_id)
        assert case is not None and case.state == "candidate_presented" and case.version == 1
