"""The fault campaigns of ``make reliability``, short: the same code with small counts, on SQLite and on
PostgreSQL (never skipped), and the checks they rely on, shown to catch what they look for."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from reliability.__main__ import CAMPAIGNS, SHORT, run
from reliability.backends import BACKENDS, database
from reliability.campaigns import Row, Worker, environment
from reliability.invariants import Ack, check
from reliability.world import PAY_AT, World, at
from states import batch
from states.db import get_engine
from states.policy import Policy


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_campaign_loses_doubles_and_half_writes_nothing(campaign: str, backend: str) -> None:
    row = run(campaign, backend, SHORT)
    figures = row.figures()
    assert figures["tried"] >= 6
    assert (figures["lost"], figures["doubled"], figures["half_written"], figures["tracebacks"]) == (0, 0, 0, 0), (
        row.examples()
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_invariants_see_what_is_lost_doubled_and_half_written(backend: str) -> None:
    with database(backend, "inv") as (url, _):
        engine = get_engine(url)
        world = World(engine)
        structure = world.structure(posts=3)
        case, paid = world.case(structure), world.in_post_cases(1)[0]
        batch.pay(engine, at(PAY_AT), Policy())
        assert not check(engine, [Ack(case, "present"), Ack(paid, "pay_tranche")])

        assert check(engine, [Ack(case, "select")]).lost == [f"case {case}: acknowledged select is not in the history"]
        with engine.begin() as con:
            con.execute(text("UPDATE recruitment_case SET state = 'selected' WHERE id = :id"), {"id": case})
            con.execute(
                text(
                    "INSERT INTO outbox (case_id, kind, recipient, payload, status, attempts, created_at, "
                    "next_attempt_at) SELECT case_id, kind, recipient, payload, status, attempts, created_at, "
                    "next_attempt_at FROM outbox WHERE case_id = :id AND kind = 'payment_order'"
                ),
                {"id": paid},
            )
        found = check(engine)
        assert any(f"case {case}: state selected" in h for h in found.half)
        assert any(f"case {paid}: payment_order to payment queued 2 times" in d for d in found.doubled)


def test_a_traceback_and_a_refusal_on_several_lines_are_counted() -> None:
    row = Row("x", "sqlite")
    row.judge(1, "", 'Traceback (most recent call last):\n  File "x"\nValueError: boom\n', who="cmd")
    row.judge(1, "", "refused: one\nrefused: two\n", who="cmd")
    row.judge(3, "", "refused: deadlock detected\n", who="cmd")
    assert len(row.tracebacks) == 1 and "ValueError: boom" in row.tracebacks[0]
    assert row.notes["refusal not on one line"] == 1 and row.notes["deadlock detected"] == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_faults_are_injected_only_where_the_harness_asks(backend: str) -> None:
    with database(backend, "inj") as (url, folder):
        world = World(get_engine(url))
        case = world.case(world.structure())
        argv = ["advance", str(case), "select", "--at", "2026-03-06T10:00", "--json"]
        plain = Worker({**environment(url, folder), "CONUM_FAULTS": "0"}, folder)
        row = Row("x", backend)
        try:
            answer = plain.ask({"argv": argv, "fault": {"kind": "commit", "at": 1}})
        finally:
            plain.close(row)
        assert (answer["code"], answer["fired"]) == (0, False)  # no CONUM_FAULTS=1: nothing injected

        case = world.case(world.structure())
        argv[1] = str(case)
        faulty = Worker(environment(url, folder, faults=True), folder)
        try:
            failed = faulty.ask({"argv": argv, "fault": {"kind": "commit", "at": 1}})
            again = faulty.ask({"argv": argv})
        finally:
            faulty.close(row)
        assert failed["fired"] and failed["code"] == 1 and failed["out"] == ""
        assert failed["err"].count("\n") == 1 and "Traceback" not in failed["err"]
        assert again["code"] == 0  # the commit failed: nothing was written, the command runs again
        assert not check(get_engine(url), [Ack(case, "select")], [case])
        assert not row.tracebacks
    assert os.environ.get("CONUM_FAULTS") is None
