"""Amounts, days and instants are written the French way, in Paris time."""

from __future__ import annotations

import pytest

from states.outbox.render import euros, french_day, french_instant


@pytest.mark.parametrize(
    ("cents", "shown"),
    [(1_250_000, "12 500,00 €"), (5, "0,05 €"), (123_456_789, "1 234 567,89 €"), (100, "1,00 €")],
)
def test_amounts_use_french_separators(cents: int, shown: str) -> None:
    assert euros(cents) == shown.replace(" ", "\u00a0")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2026-03-16", "16 mars 2026"),
        ("2026-04-01", "1er avril 2026"),
        ("2026-08-31T23:30:00+00:00", "1er septembre 2026"),  # already the next day in Paris
    ],
)
def test_dates_are_written_in_french(value: str, shown: str) -> None:
    assert french_day(value) == shown


def test_instants_are_shown_in_paris_time() -> None:
    assert french_instant("2026-03-16T09:00:00+00:00") == "16 mars 2026 à 10 h 00"
    assert french_instant("2026-08-04T04:05:00+00:00") == "4 août 2026 à 6 h 05"
