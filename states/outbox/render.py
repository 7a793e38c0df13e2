"""What a notification says, in French: amounts, days and instants, the mail templates, the encoded subject.

The formats are the programme's own (``12 500,00 €``, ``1er avril 2026``, ``16 mars 2026 à 10 h 00``, Paris
time) and serve the report and the dashboard as well as the mails. Each notification kind has a template
``templates/mail/<kind>.j2`` with a ``subject`` and a ``body`` block; a variable the context lacks is an
error, never a blank. Templates ship with the code: each is compiled and checked once per process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache, lru_cache
from typing import Any

import jinja2

from states.clock import PARIS, paris_day, utc
from states.errors import BadInput
from states.french import FILTERS as FRENCH
from states.french import MONTHS
from states.paths import TEMPLATES

#: The mail templates, one ``<kind>.j2`` per notification kind (``_*.j2`` are shared parts).
MAIL_TEMPLATES = TEMPLATES / "mail"

NBSP = "\u00a0"
CONTRACT_TYPES = {"CDI": "CDI", "CDD": "CDD", "PEC": "contrat PEC", "contrat_de_projet": "contrat de projet"}
RUPTURE_REASONS = {
    "licenciement": "licenciement",
    "demission": "démission",
    "non_reconduction_cdd": "non-reconduction du CDD",
    "fin_de_subventionnement": "fin de subventionnement",
}


class UnknownKind(BadInput):
    """No mail template exists for a notification kind."""


# ---------------------------------------------------------------- French formats


def euros(cents: int) -> str:
    """Format integer cents the French way: ``1250000`` → ``12 500,00 €`` (no-break spaces)."""
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise TypeError(f"an amount must be integer cents, got {cents!r}")
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{units:,}".replace(",", NBSP) + f",{rest:02d}{NBSP}€"


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return paris_day(value)
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) == 10:
        return date.fromisoformat(value)
    if isinstance(value, str):
        return paris_day(datetime.fromisoformat(value))
    raise TypeError(f"expected a date, a date-time or an ISO 8601 text, got {value!r}")


def french_day(value: date | datetime | str) -> str:
    """Format a day the French way: ``16 mars 2026``, ``1er avril 2026`` (instants are read in Paris time)."""
    day = _as_date(value)
    number = "1er" if day.day == 1 else str(day.day)
    return f"{number} {MONTHS[day.month - 1]} {day.year}"


def french_instant(value: datetime | str) -> str:
    """Format an instant in Paris time: ``16 mars 2026 à 10 h 00``."""
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(instant, datetime):
        raise TypeError(f"expected a date-time or an ISO 8601 text, got {value!r}")
    local = utc(instant).astimezone(PARIS)
    return f"{french_day(local.date())} à {local.hour} h {local.minute:02d}"


def _contract_type(code: str) -> str:
    return CONTRACT_TYPES.get(code, code)


def _reason(code: str) -> str:
    return RUPTURE_REASONS.get(code, code)


# ---------------------------------------------------------------- templates


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(MAIL_TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain-text mails
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(
        euros=euros, day=french_day, instant=french_instant, contract_type=_contract_type, reason=_reason, **FRENCH
    )
    return env


@lru_cache(maxsize=1)
def mail_kinds() -> tuple[str, ...]:
    """Return the notification kinds that have a mail template (``templates/mail/<kind>.j2``)."""
    return tuple(sorted(p.stem for p in MAIL_TEMPLATES.glob("*.j2") if not p.name.startswith("_")))


@cache
def _template(kind: str) -> jinja2.Template:
    """Return the compiled template of ``kind``, checked once per process (templates ship with the code)."""
    kinds = mail_kinds()
    if kind not in kinds:
        raise UnknownKind(
            f"no mail template for notification kind '{kind}': known kinds are {', '.join(kinds)}; "
            f"add templates/mail/{kind}.j2 with a subject and a body block"
        )
    template = _env().get_template(f"{kind}.j2")
    missing = {"subject", "body"} - set(template.blocks)
    if missing:
        raise UnknownKind(
            f"template templates/mail/{kind}.j2 lacks the block(s) {', '.join(sorted(missing))}: "
            "define {% block subject %} and {% block body %}"
        )
    return template


_SPACES = re.compile(r"[ \t\r\n]+")


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):  # at most one blank line in a row
            out.append(line)
    return "\n".join(out) + "\n"


def render(kind: str, context: Mapping[str, Any]) -> tuple[str, str]:
    """Render the French subject (one line) and plain-text body of a notification of ``kind``.

    Raises ``UnknownKind`` when no template exists for ``kind``, and
    ``jinja2.UndefinedError`` when the context lacks a variable the template uses.
    """
    template = _template(kind)
    ctx = template.new_context(dict(context))
    subject = _SPACES.sub(" ", "".join(template.blocks["subject"](ctx))).strip()  # keeps no-break spaces
    body = _tidy("".join(template.blocks["body"](ctx)))
    return subject, body


# ---------------------------------------------------------------- the subject, encoded (RFC 2047)

#: What RFC 2047's "Q" encoding writes as it is in a header (a space becomes ``_``).
_Q_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/")
_Q_TEXT = 55  # encoded characters per word: ``=?utf-8?q?…?=`` stays within 67, a line within 78


def _q(ch: str) -> str:
    if ch in _Q_PLAIN:
        return ch
    if ch == " ":
        return "_"
    return "".join(f"={b:02X}" for b in ch.encode("utf-8"))


def subject_line(value: str) -> str:
    """The Subject line: as it is when short ASCII, else UTF-8 "Q" encoded words (RFC 2047), folded.

    Linear in the subject's length (the standard library's encoder is quadratic on long French subjects);
    a character is never split between two words.
    """
    if value.isascii() and "\n" not in value and len(value) <= 69 and value.strip() == value:
        return f"Subject: {value}\n"
    words: list[str] = []
    current: list[str] = []
    size = 0
    for ch in value:
        q = _q(ch)
        if size + len(q) > _Q_TEXT and current:
            words.append("".join(current))
            current, size = [], 0
        current.append(q)
        size += len(q)
    if current:
        words.append("".join(current))
    return "Subject: " + "\n ".join(f"=?utf-8?q?{w}?=" for w in words) + "\n"


__all__ = [
    "CONTRACT_TYPES",
    "MAIL_TEMPLATES",
    "MONTHS",
    "RUPTURE_REASONS",
    "UnknownKind",
    "euros",
    "french_day",
    "french_instant",
    "mail_kinds",
    "render",
    "subject_line",
]
