"""The programme dashboard: the tables the ANCT reads, computed from the rows.

Counting is done by the database (``GROUP BY``); only the money ledger, which
groups by Paris calendar month, is folded in Python over a few columns. The
tables are plain lists of dicts, ready for any renderer (a Prefect table
artifact, a CSV file, a terminal); their headers and texts are in French, as
the ANCT reads them. Amounts stay in integer cents until they are shown.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, func, or_
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from states.applications.figures import PostsTables, posts_tables
from states.audit import verify
from states.clock import paris_day, show, utc
from states.config import policy as config_policy
from states.db import read_session
from states.geo import name_of, region_of
from states.lifecycle import LABELS, OPEN, State
from states.machine import mermaid
from states.models import Case, Structure, Tranche
from states.outbox.render import euros
from states.policy import Policy

#: The escalation level from which a case needs someone above the structure (2 préfet, 3 ANCT).
ESCALATED = 2
#: At most this many cases are listed in the table of cases needing attention (the count is always whole).
ATTENTION_ROWS = 500
#: The money row of tranche 1 before the conseiller takes post: its due date is not known yet.
NOT_YET_DUE = "à la prise de poste"
TOTAL = "total"


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


# ---------------------------------------------------------------- cases by place and state


def counts_by_departement(session: Session) -> dict[str, Counter[str]]:
    """Return, for each département with at least one case, the number of cases in each state."""
    rows = session.exec(
        select(Structure.departement, Case.state, func.count(col(Case.id)))
        .join(Structure, col(Structure.id) == col(Case.structure_id))
        .group_by(col(Structure.departement), col(Case.state))
    ).all()
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for departement, state, n in rows:
        out[departement][state] += n
    return dict(out)


def _state_columns(counter: Mapping[str, int]) -> dict[str, int]:
    row = {s.value: counter.get(s.value, 0) for s in State}
    row["en cours"] = sum(counter.get(s.value, 0) for s in OPEN)
    row[TOTAL] = sum(counter.values())
    return row


def departement_table(counts: Mapping[str, Counter[str]]) -> list[dict[str, Any]]:
    """One row per département: its name, its région, the cases in each state, open and total."""
    rows = [
        {"département": code, "nom": name_of(code), "région": region_of(code), **_state_columns(counter)}
        for code, counter in sorted(counts.items())
    ]
    if rows:
        rows.append({"département": TOTAL, "nom": "", "région": "", **_state_columns(_sum(counts.values()))})
    return rows


def region_table(counts: Mapping[str, Counter[str]]) -> list[dict[str, Any]]:
    """One row per région (départements grouped with ``states.geo``), then the national total."""
    by_region: dict[str, Counter[str]] = defaultdict(Counter)
    for code, counter in counts.items():
        by_region[region_of(code)].update(counter)
    rows = [{"région": region, **_state_columns(counter)} for region, counter in sorted(by_region.items())]
    if rows:
        rows.append({"région": TOTAL, **_state_columns(_sum(counts.values()))})
    return rows


def _sum(counters: Iterable[Counter[str]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for c in counters:
        total.update(c)
    return total


# ---------------------------------------------------------------- cases needing attention


def attention(session: Session, at: datetime, limit: int = ATTENTION_ROWS) -> tuple[int, list[dict[str, Any]]]:
    """Return how many open cases are overdue or escalated at ``at``, and the first ``limit`` of them.

    Overdue: the deadline of the current step has passed. Escalated: the case reached the préfet or
    the ANCT. The most escalated come first, then the oldest deadlines.
    """
    at = utc(at)
    cond = (
        col(Case.state).in_([s.value for s in OPEN]),
        or_(col(Case.deadline_at) < at, col(Case.escalation_level) >= ESCALATED),
    )
    total = session.exec(select(func.count(col(Case.id))).where(*cond)).one()
    q = (
        sql_select(
            col(Case.id),
            col(Case.state),
            col(Case.escalation_level),
            col(Case.deadline_at),
            col(Structure.name),
            col(Structure.departement),
        )
        .join(Structure, col(Structure.id) == col(Case.structure_id))
        .where(*cond)
        .order_by(col(Case.escalation_level).desc(), col(Case.deadline_at), col(Case.id))
        .limit(limit)
    )
    rows = []
    for case_id, state, level, deadline, structure, departement in session.execute(q):
        late = (paris_day(at) - paris_day(deadline)).days if deadline is not None and utc(deadline) < at else 0
        rows.append(
            {
                "dossier": case_id,
                "état": LABELS[State(state)],
                "structure": structure,
                "département": departement,
                "échéance": show(deadline) or "",
                "jours de retard": late,
                "niveau d'escalade": level,
            }
        )
    return total, rows


# ---------------------------------------------------------------- money


@dataclass
class MonthMoney:
    """Subsidy movements of one month, in cents.

    ``committed`` counts the subsidies of contracts starting that month; ``paid`` the tranches paid that
    month; ``to_pay`` the tranches still scheduled, by month due; ``cancelled`` the tranches cancelled by a
    rupture or a cancellation ending the contract that month. Over all months,
    committed = paid + to_pay + cancelled.
    """

    month: str
    committed: int = 0
    paid: int = 0
    to_pay: int = 0
    cancelled: int = 0


def money_by_month(session: Session) -> list[MonthMoney]:
    """Return the subsidy ledger by month (``YYYY-MM``, Paris), then the not-yet-dated first tranches."""
    months: dict[str, MonthMoney] = {}

    def at(key: str) -> MonthMoney:
        return months.setdefault(key, MonthMoney(key))

    signed = session.execute(
        sql_select(col(Case.contract_start), col(Case.subsidy_cents)).where(col(Case.subsidy_cents).is_not(None))
    ).all()
    for start, subsidy in signed:
        if start is not None and subsidy is not None:
            at(_month(start)).committed += subsidy
    tranches = session.execute(
        sql_select(
            col(Tranche.amount_cents),
            col(Tranche.status),
            col(Tranche.due_on),
            col(Tranche.paid_at),
            col(Case.ended_on),
        ).join(Case, col(Case.id) == col(Tranche.case_id))
    ).all()
    for amount, status, due_on, paid_at, ended_on in tranches:
        if status == "paid" and paid_at is not None:
            at(_month(paris_day(paid_at))).paid += amount
        elif status == "scheduled":
            at(_month(due_on) if due_on is not None else NOT_YET_DUE).to_pay += amount
        elif status == "cancelled" and ended_on is not None:
            at(_month(ended_on)).cancelled += amount
    # "YYYY-MM" sorts by date; the undated row ("à …") sorts after every month
    return [months[k] for k in sorted(months)]


def money_table(rows: list[MonthMoney]) -> list[dict[str, Any]]:
    """Format the ledger with a total row: what the ANCT reads."""
    total = MonthMoney(TOTAL)
    for r in rows:
        total.committed += r.committed
        total.paid += r.paid
        total.to_pay += r.to_pay
        total.cancelled += r.cancelled
    return [
        {
            "mois": r.month,
            "engagé": euros(r.committed),
            "versé": euros(r.paid),
            "reste à verser": euros(r.to_pay),
            "annulé": euros(r.cancelled),
        }
        for r in [*rows, *([total] if rows else [])]
    ]


# ---------------------------------------------------------------- the batch runs' own tables


def due_count(session: Session, at: datetime) -> int:
    """Count the cases with a deadline step due on or before ``at``: the sweep's work, for its progress bar."""
    return session.exec(select(func.count(col(Case.id))).where(col(Case.due_at) <= utc(at))).one()


def payments_by_structure(session: Session, payments: Iterable[tuple[int, int]]) -> list[dict[str, Any]]:
    """Group ``(structure_id, amount_cents)`` payments by structure, with a total row."""
    count: Counter[int] = Counter()
    amount: Counter[int] = Counter()
    for structure_id, cents in payments:
        count[structure_id] += 1
        amount[structure_id] += cents
    if not count:
        return []
    structures = {s.id: s for s in session.exec(select(Structure).where(col(Structure.id).in_(sorted(count)))).all()}
    rows = []
    for sid in sorted(count):
        s = structures.get(sid)
        rows.append(
            {
                "structure": sid,
                "nom": s.name if s else "",
                "département": s.departement if s else "",
                "tranches": count[sid],
                "montant": euros(amount[sid]),
            }
        )
    rows.append(
        {
            "structure": TOTAL,
            "nom": "",
            "département": "",
            "tranches": sum(count.values()),
            "montant": euros(sum(amount.values())),
        }
    )
    return rows


# ---------------------------------------------------------------- the whole dashboard


@dataclass
class Dashboard:
    """Every table of the dashboard at one instant, and the figures of its summary."""

    at: datetime
    by_departement: list[dict[str, Any]] = field(default_factory=list)
    by_region: list[dict[str, Any]] = field(default_factory=list)
    attention_total: int = 0
    attention: list[dict[str, Any]] = field(default_factory=list)
    money: list[MonthMoney] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    #: Cases whose history chain is broken (rows changed or removed outside Conum; ``conum verify`` names them).
    broken_histories: int = 0
    #: posts requested / validated / under contract, by département, région and nationally against the envelope
    posts: PostsTables = field(default_factory=PostsTables)

    def summary_markdown(self) -> str:
        """The summary the ANCT reads first, in French."""
        committed = sum(m.committed for m in self.money)
        paid = sum(m.paid for m in self.money)
        to_pay = sum(m.to_pay for m in self.money)
        open_ = sum(self.counts.get(s.value, 0) for s in OPEN)
        lines = [
            f"# Tableau de bord du programme — {show(self.at)}",
            "",
            f"- Dossiers : **{sum(self.counts.values())}**, dont **{open_}** en cours",
            f"- En poste : **{self.counts.get(State.IN_POST.value, 0)}** ; en formation : "
            f"**{self.counts.get(State.IN_TRAINING.value, 0)}**",
            f"- En retard ou escaladés : **{self.attention_total}**",
            f"- Historiques rompus (modifiés hors de Conum, voir `conum verify`) : **{self.broken_histories}**",
            f"- Subvention engagée : **{euros(committed)}** ; versée : **{euros(paid)}** ; "
            f"reste à verser : **{euros(to_pay)}**",
            "",
            "| état | libellé | dossiers |",
            "|---|---|---|",
            *(f"| `{s.value}` | {LABELS[s]} | {self.counts.get(s.value, 0)} |" for s in State),
        ]
        return "\n".join(lines) + "\n"


def lifecycle_markdown() -> str:
    """The lifecycle diagram, generated from the table, in a mermaid block."""
    return (
        "# Cycle de vie d'un dossier\n\n"
        "Généré depuis la table des transitions (`states/lifecycle.py`).\n\n"
        f"```mermaid\n{mermaid()}\n```\n"
    )


def build(engine: Engine, at: datetime, policy: Policy | None = None) -> Dashboard:
    """Compute the whole dashboard at ``at`` in one read transaction (the history chains are checked apart)."""
    broken = len(verify(engine).broken)
    with read_session(engine) as session, session.begin():
        counts = counts_by_departement(session)
        total, rows = attention(session, at)
        return Dashboard(
            broken_histories=broken,
            at=utc(at),
            by_departement=departement_table(counts),
            by_region=region_table(counts),
            attention_total=total,
            attention=rows,
            money=money_by_month(session),
            counts=_sum(counts.values()),
            posts=posts_tables(session, policy or config_policy()),
        )
