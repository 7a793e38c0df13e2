"""A sweep or payment run that leaves due cases held by another transaction ends Failed, saying so in French."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import hold_case, postgres_database, walked_cases

from flows.payments import pay_tranches
from flows.sweep import sweep_deadlines
from states import batch
from states.clock import parse_instant

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with postgres_database("conum_held_flow") as url:
        monkeypatch.setenv("CONUM_DATABASE_URL", url)
        monkeypatch.setenv("CONUM_MAIL_DIR", str(tmp_path / "mail"))
        monkeypatch.setenv("CONUM_PAYMENT_DIR", str(tmp_path / "payments"))
        monkeypatch.setattr(batch, "HELD_WAIT_SECONDS", 0.5)
        yield url


@pytest.mark.parametrize(
    ("flow", "at", "to", "name"),
    [
        (pay_tranches, "2026-08-04T08:00", "in_post", "le paiement des tranches"),
        (sweep_deadlines, "2026-03-12T11:00", "presented", "le balayage des échéances"),
    ],
)
def test_a_batch_run_with_held_cases_fails_with_one_french_line(
    pg: str, flow: object, at: str, to: str, name: str
) -> None:
    cases = walked_cases(pg, 2, to)
    holder = hold_case(pg, cases[1])
    try:
        state = flow(at=parse_instant(at), return_state=True)  # type: ignore[operator]
    finally:
        holder.rollback()
        holder.close()
    assert state.is_failed()
    message = state.message or ""
    assert (
        f"1 dossier(s) dû(s) verrouillé(s) par une autre exécution ou action n'ont pas été traités ({cases[1]})"
        in message
    )
    assert f"relancez {name}" in message
    assert flow(at=parse_instant(at), return_state=True).is_completed()  # type: ignore[operator]
