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

from sqlalchemy import Engine, case, func, or_
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from states.applications.figures import PostsTables, posts_tables
from states.audit import verify
from states.clock import paris_day, utc
from states.config import policy as config_policy
from states.db import read_session
from states.geo import name_of, region_of
from states.labels import SHORT, escalation, legend, lifecycle_diagram, month_label, short_state, when, when_long
from states.lifecycle import LABELS, OPEN, State
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
#: A structure's name in a table is cut to this many characters (its case page gives it whole).
STRUCTURE_CHARS = 32


def clip(name: str, size: int) -> str:
    """Return ``name`` cut to ``size`` characters, with an ellipsis when cut: table columns stay narrow."""
    return name if len(name) <= size else name[: size - 1].rstrip() + "…"


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


#: Column headers beyond the states (short, with ``LEGEND`` saying what they mean).
OPEN_COL, CLOSED_COL, OVERDUE, ESCALATED_COL = "en cours", "clos", "en retard", "escaladés"
CLOSED: tuple[State, ...] = tuple(s for s in State if s not in OPEN)
LEGEND_FIGURES = legend(
    (),
    {
        OPEN_COL: "dossiers ouverts",
        OVERDUE: "dossiers ouverts dont l'échéance est passée",
        ESCALATED_COL: "dossiers ouverts escaladés au préfet ou à l'ANCT",
        CLOSED_COL: "dossiers terminés",
        TOTAL: "ouverts et terminés",
    },
)
LEGEND_STEPS = legend(OPEN)
LEGEND_CLOSED = legend(CLOSED, {CLOSED_COL: "dossiers terminés"})


def attention_by_departement(session: Session, at: datetime) -> dict[str, Counter[str]]:
    """Return, for each département, its open cases overdue at ``at`` and those escalated (préfet or ANCT)."""
    overdue = func.sum(case((col(Case.deadline_at) < utc(at), 1), else_=0))
    escalated = func.sum(case((col(Case.escalation_level) >= ESCALATED, 1), else_=0))
    rows = session.execute(
        sql_select(col(Structure.departement), overdue, escalated)
        .join(Structure, col(Structure.id) == col(Case.structure_id))
        .where(col(Case.state).in_([s.value for s in OPEN]))
        .group_by(col(Structure.departement))
    ).all()
    return {dep: Counter({OVERDUE: int(o or 0), ESCALATED_COL: int(e or 0)}) for dep, o, e in rows}


def _figures(counter: Mapping[str, int], late: Mapping[str, int] | None = None) -> dict[str, int]:
    """A place's key figures: open cases, overdue and escalated ones, closed ones, all."""
    return {
        OPEN_COL: sum(counter.get(s.value, 0) for s in OPEN),
        OVERDUE: (late or {}).get(OVERDUE, 0),
        ESCALATED_COL: (late or {}).get(ESCALATED_COL, 0),
        CLOSED_COL: sum(counter.get(s.value, 0) for s in CLOSED),
        TOTAL: sum(counter.values()),
    }


def _steps(counter: Mapping[str, int]) -> dict[str, int]:
    """A place's open cases by step."""
    return {SHORT[s]: counter.get(s.value, 0) for s in OPEN}


def _ends(counter: Mapping[str, int]) -> dict[str, int]:
    """A place's closed cases by the way they ended."""
    return {
        **{SHORT[s]: counter.get(s.value, 0) for s in CLOSED},
        CLOSED_COL: sum(counter.get(s.value, 0) for s in CLOSED),
    }


def _by_region(counts: Mapping[str, Counter[str]]) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for code, counter in counts.items():
        out[region_of(code)].update(counter)
    return out


def departement_table(
    counts: Mapping[str, Counter[str]], late: Mapping[str, Counter[str]] | None = None
) -> list[dict[str, Any]]:
    """One row per département: its open, overdue, escalated, closed and all cases; then the total row."""
    late = late or {}
    rows: list[dict[str, Any]] = [
        {"dép.": code, "nom": name_of(code), **_figures(counter, late.get(code))}
        for code, counter in sorted(counts.items())
    ]
    if rows:
        rows.append({"dép.": TOTAL, "nom": "", **_figures(_sum(counts.values()), _sum(late.values()))})
    return rows


def departement_steps_table(counts: Mapping[str, Counter[str]]) -> list[dict[str, Any]]:
    """One row per département: its open cases at each step; then the total row."""
    rows: list[dict[str, Any]] = [{"dép.": code, **_steps(counter)} for code, counter in sorted(counts.items())]
    if rows:
        rows.append({"dép.": TOTAL, **_steps(_sum(counts.values()))})
    return rows


def departement_closed_table(counts: Mapping[str, Counter[str]]) -> list[dict[str, Any]]:
    """One row per département: its closed cases by the way they ended; then the total row."""
    rows: list[dict[str, Any]] = [{"dép.": code, **_ends(counter)} for code, counter in sorted(counts.items())]
    if rows:
        rows.append({"dép.": TOTAL, **_ends(_sum(counts.values()))})
    return rows


def region_table(
    counts: Mapping[str, Counter[str]], late: Mapping[str, Counter[str]] | None = None
) -> list[dict[str, Any]]:
    """One row per région (départements grouped with ``states.geo``): its key figures; then the national total."""
    regions, late_regions = _by_region(counts), _by_region(late or {})
    rows: list[dict[str, Any]] = [
        {"région": region, **_figures(counter, late_regions.get(region))} for region, counter in sorted(regions.items())
    ]
    if rows:
        rows.append({"région": TOTAL, **_figures(_sum(counts.values()), _sum((late or {}).values()))})
    return rows


def region_steps_table(counts: Mapping[str, Counter[str]]) -> list[dict[str, Any]]:
    """One row per région: its open cases at each step; then the national total."""
    rows: list[dict[str, Any]] = [
        {"région": region, **_steps(counter)} for region, counter in sorted(_by_region(counts).items())
    ]
    if rows:
        rows.append({"région": TOTAL, **_steps(_sum(counts.values()))})
    return rows


def region_closed_table(counts: Mapping[str, Counter[str]]) -> list[dict[str, Any]]:
    """One row per région: its closed cases by the way they ended; then the national total."""
    rows: list[dict[str, Any]] = [
        {"région": region, **_ends(counter)} for region, counter in sorted(_by_region(counts).items())
    ]
    if rows:
        rows.append({"région": TOTAL, **_ends(_sum(counts.values()))})
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
                "étape": short_state(state),
                "structure": clip(structure, STRUCTURE_CHARS),
                "dép.": departement,
                "échéance": when(deadline),
                "retard (j)": late,
                "escalade": escalation(level, short=True),
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
            "mois": month_label(r.month),
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


#: Short headers of the posts tables (their description says "postes"): narrow columns.
POSTS_HEADERS = {
    "département": "dép.",
    "postes demandés": "demandés",
    "postes validés": "validés",
    "postes sous contrat": "sous contrat",
    "reste dans l'enveloppe": "reste",
}
LEGEND_POSTS = (
    "**demandés** : postes demandés par les structures ; **validés** : postes validés (conventions) ; "
    "**sous contrat** : conseillers sous contrat ; **enveloppe** : postes ouverts au périmètre ; "
    "**reste** : enveloppe moins postes validés."
)


def narrow_posts(rows: list[dict[str, Any]], drop: tuple[str, ...] = ("région",)) -> list[dict[str, Any]]:
    """Return a posts table with short headers and without the columns ``drop`` (a région has its own table)."""
    return [{POSTS_HEADERS.get(k, k): v for k, v in row.items() if k not in drop} for row in rows]


# ---------------------------------------------------------------- the whole dashboard


@dataclass
class Dashboard:
    """Every table of the dashboard at one instant, and the figures of its summary."""

    at: datetime
    #: open cases by département and région (each open state, overdue, escalated), then the closed ones
    by_departement: list[dict[str, Any]] = field(default_factory=list)
    by_region: list[dict[str, Any]] = field(default_factory=list)
    steps_by_departement: list[dict[str, Any]] = field(default_factory=list)
    steps_by_region: list[dict[str, Any]] = field(default_factory=list)
    closed_by_departement: list[dict[str, Any]] = field(default_factory=list)
    closed_by_region: list[dict[str, Any]] = field(default_factory=list)
    attention_total: int = 0
    overdue: int = 0
    escalated: int = 0
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
            f"# Tableau de bord du programme — {when_long(self.at)}",
            "",
            f"- Dossiers : **{sum(self.counts.values())}**, dont **{open_}** en cours",
            f"- En poste : **{self.counts.get(State.IN_POST.value, 0)}** ; en formation : "
            f"**{self.counts.get(State.IN_TRAINING.value, 0)}**",
            f"- En retard ou escaladés : **{self.attention_total}** (en retard : **{self.overdue}** ; "
            f"escaladés au préfet ou à l'ANCT : **{self.escalated}**)",
            f"- Historiques rompus (modifiés hors de Conum, voir `conum verify`) : **{self.broken_histories}**",
            f"- Subvention engagée : **{euros(committed)}** ; versée : **{euros(paid)}** ; "
            f"reste à verser : **{euros(to_pay)}**",
            "",
            "| Étape | Colonne | Dossiers |",
            "|---|---|---:|",
            *(f"| {LABELS[s]} | {SHORT[s]} | {self.counts.get(s.value, 0)} |" for s in State),
            "",
            "## Légende des tableaux",
            "",
            f"- Chiffres par département et par région : {LEGEND_FIGURES}",
            f"- Dossiers en cours par étape : {LEGEND_STEPS}",
            f"- Dossiers clos : {LEGEND_CLOSED}",
            "- Dossiers à traiter : **retard (j)** : jours depuis l'échéance ; **escalade** : relance, préfet "
            "ou ANCT ; **OF** : organisme de formation.",
            "- Dates et heures : heure de Paris.",
        ]
        return "\n".join(lines) + "\n"


def lifecycle_markdown() -> str:
    """The lifecycle diagram, generated from the table, in a mermaid block (French labels only)."""
    return (
        "# Cycle de vie d'un dossier\n\n"
        "Généré depuis la table des transitions du programme.\n\n"
        f"```mermaid\n{lifecycle_diagram()}\n```\n"
    )


def build(engine: Engine, at: datetime, policy: Policy | None = None) -> Dashboard:
    """Compute the whole dashboard at ``at`` in one read transaction (the history chains are checked apart)."""
    broken = len(verify(engine).broken)
    with read_session(engine) as session, session.begin():
        counts = counts_by_departement(session)
        late = attention_by_departement(session, at)
        total, rows = attention(session, at)
        return Dashboard(
            broken_histories=broken,
            at=utc(at),
            by_departement=departement_table(counts, late),
            by_region=region_table(counts, late),
            steps_by_departement=departement_steps_table(counts),
            steps_by_region=region_steps_table(counts),
            closed_by_departement=departement_closed_table(counts),
            closed_by_region=region_closed_table(counts),
            attention_total=total,
            overdue=sum(c[OVERDUE] for c in late.values()),
            escalated=sum(c[ESCALATED_COL] for c in late.values()),
            attention=rows,
            money=money_by_month(session),
            counts=_sum(counts.values()),
            posts=posts_tables(session, policy or config_policy()),
        )
