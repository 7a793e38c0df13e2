"""Time as a parameter: instants, Paris wall-clock deadlines and contract months.

Instants are stored in UTC and shown in Europe/Paris with their offset. A
deadline of N days falls at the same Paris wall-clock time N calendar days
later, whatever daylight-saving change lies between.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from states.errors import BadInput, RuleViolation

PARIS = ZoneInfo("Europe/Paris")
#: How far ahead of the real clock an instant may be (clocks of two machines differ a little).
SKEW = timedelta(minutes=5)
_SIMULATED: ContextVar[bool] = ContextVar("conum_simulated_clock", default=False)


def now() -> datetime:
    return datetime.now(UTC)


def simulated() -> bool:
    """Tell whether instants may lie in the future: ``CONUM_CLOCK=simulated`` (tests, replays) or a simulation."""
    return _SIMULATED.get() or os.environ.get("CONUM_CLOCK", "").strip().lower() == "simulated"


@contextmanager
def simulated_clock() -> Iterator[None]:
    """Let the code inside date its actions in the future: a simulation keeps its own clock."""
    token = _SIMULATED.set(True)
    try:
        yield
    finally:
        _SIMULATED.reset(token)


def not_in_future(at: datetime, what: str = "the action") -> datetime:
    """Refuse an instant after the real clock (beyond ``SKEW``), unless the clock is simulated."""
    if not simulated() and utc(at) > now() + SKEW:
        raise RuleViolation(
            f"{what} is dated {show(at)}, after now (rule: not_in_future): date it on or before the present",
            rule="not_in_future",
        )
    return at


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 date or date-time; Europe/Paris when no offset is given."""
    try:
        if len(text) == 10:
            value = datetime.combine(date.fromisoformat(text), time(0, 0))
        else:
            value = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(
            f"'{text}' is not an ISO 8601 date or date-time: write e.g. 2026-03-01 or 2026-03-01T09:30"
        ) from None
    if not 1900 <= value.year <= 2200:
        raise BadInput(f"'{text}' is out of the range this programme can date (1900 to 2200): check the year")
    if value.tzinfo is None:
        value = _paris(value, text)
    return value.astimezone(UTC)


def _paris(local: datetime, text: str) -> datetime:
    """Read a wall-clock time in Paris; refuse one that does not exist or that happens twice (DST changes)."""
    first, second = local.replace(tzinfo=PARIS, fold=0), local.replace(tzinfo=PARIS, fold=1)
    if first.utcoffset() != second.utcoffset():
        gap = first.astimezone(UTC).astimezone(PARIS).replace(tzinfo=None) != local
        if gap:
            raise BadInput(
                f"'{text}' does not exist in Paris (the clocks jump forward that night): give an existing time"
            )
        raise BadInput(
            f"'{text}' happens twice in Paris (the clocks go back that night): add the offset, "
            f"{first.isoformat()} or {second.isoformat()}"
        )
    return first


def parse_date(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{what} '{text}' is not a date: write it as YYYY-MM-DD") from None


def utc(value: datetime) -> datetime:
    """Return an aware UTC instant; naive values (as read from SQLite) are UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def show(value: datetime | None) -> str | None:
    """Format an instant in Europe/Paris with its offset."""
    if value is None:
        return None
    return utc(value).astimezone(PARIS).isoformat()


def paris_day(value: datetime) -> date:
    return utc(value).astimezone(PARIS).date()


def start_of_day(day: date) -> datetime:
    """Return midnight in Paris on ``day``, as a UTC instant."""
    return datetime.combine(day, time(0, 0), tzinfo=PARIS).astimezone(UTC)


def shift(start: datetime, days: int = 0, months: int = 0) -> datetime:
    """Return the instant ``months`` and ``days`` later at the same Paris wall-clock time."""
    local = utc(start).astimezone(PARIS).replace(tzinfo=None)
    moved = local + (relativedelta(months=months, days=days) if months else timedelta(days=days))
    return moved.replace(tzinfo=PARIS).astimezone(UTC)


def add_months(day: date, months: int) -> date:
    result: date = day + relativedelta(months=months)
    return result


def whole_months(start: date, end: date) -> int:
    """Count whole months from ``start`` to ``end``, the end day included, partial months dropped."""
    if end < start:
        return 0
    delta = relativedelta(end + timedelta(days=1), start)
    return delta.years * 12 + delta.months
