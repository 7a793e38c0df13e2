"""The figures of a simulated programme, read from its database, and the headline a reader looks at first.

``collect`` reads them with a handful of grouped queries; they are plain,
JSON-ready data, amounts in integer cents until ``headline`` formats them in
French. The same database gives the same figures.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from states.clock import paris_day, utc
from states.geo import DEPARTEMENTS, name_of, region_of
from states.lifecycle import State
from states.models import Candidate, Case, History, Structure, Tranche
from states.outbox.render import MONTHS, RUPTURE_REASONS, euros, french_day

#: The happy path, in order: the funnel counts the cases that reached each step.
FUNNEL = (
    State.CANDIDATE_PRESENTED,
    State.SELECTED,
    State.TRAINING_ORG_CONTACTED,
    State.CONTRACT_SIGNED,
    State.IN_TRAINING,
    State.IN_POST,
    State.TRANCHES_PAID,
)
#: How the outcome of a case reads in the report.
OUTCOMES = (State.TRANCHES_PAID, State.BROKEN, State.DECLINED, State.EXPIRED, State.WITHDRAWN, State.CANCELLED)
#: The deadline acts of the sweep, as the report names them.
DEADLINE_KINDS = ("reminders", "prefet", "anct", "time_outs")
DEADLINE_LABELS = {
    "reminders": "Relances",
    "prefet": "Escalades au préfet",
    "anct": "Escalades à l'ANCT",
    "time_outs": "Dossiers expirés (délai final dépassé)",
}
#: The measure beside each département's rate: the steps past a deadline (escalations and expiries; a
#: reminder comes before the deadline and is not one), and the rate is that count per 100 cases.
MISSED_LABEL = "Échéances manquées (escalades + expirations)"
MISSED_RATE_LABEL = "Échéances manquées pour 100 dossiers"
TOP_DEPARTEMENTS = 12


def month_label(month: str) -> str:
    """``2026-03`` → ``mars 2026``."""
    year, m = month.split("-")
    return f"{MONTHS[int(m) - 1]} {year}"


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def months_between(first: str, last: str) -> list[str]:
    y, m = (int(p) for p in first.split("-"))
    out = []
    while f"{y:04d}-{m:02d}" <= last:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


@dataclass
class Figures:
    """Everything the report shows; plain data (JSON-ready), amounts in cents."""

    run: dict[str, Any]
    structures: int
    posts: int
    candidates: int
    cases: int
    employers: list[tuple[str, int]]
    by_state: dict[str, int]
    reached: dict[str, int]
    sign_days: list[float]
    deadlines_by_region: list[dict[str, Any]]
    top_departements: list[dict[str, Any]]
    departements_with_structures: int
    ruptures: list[dict[str, Any]]
    cashflow: list[dict[str, Any]]
    committed_cents: int
    paid_cents: int
    cancelled_cents: int
    scheduled_cents: int
    recovery_cents: int
    recoveries: int
    contracts_by_type: dict[str, int]
    mails: int = 0
    payment_orders: int = 0
    #: The application phase (``states.simulation.appfigures``): empty for a programme without applications.
    applications: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def median_sign_days(self) -> float | None:
        return round(statistics.median(self.sign_days), 1) if self.sign_days else None

    @property
    def deadline_totals(self) -> dict[str, int]:
        return {k: sum(r[k] for r in self.deadlines_by_region) for k in DEADLINE_KINDS}


def _count_files(folder: Path | None) -> int:
    if folder is None or not folder.is_dir():
        return 0
    return sum(1 for p in folder.rglob("*") if p.is_file())


def collect(
    engine: Engine,
    run: dict[str, Any] | None = None,
    *,
    mail_dir: Path | None = None,
    payment_dir: Path | None = None,
    envelope: int | None = None,
) -> Figures:
    """Read the programme's figures from the database (``run``: the simulation's own counts, if any).

    The structures counted are those holding posts (an application refused or withdrawn leaves a structure
    with none); ``envelope`` is the national envelope the application phase is read against.
    """
    from states.simulation.appfigures import application_figures

    with Session(engine) as s:
        hosting = col(Structure.posts) > 0
        structures, posts = s.exec(
            select(func.count(), func.coalesce(func.sum(Structure.posts), 0)).where(hosting)
        ).one()
        deps_with = s.exec(select(func.count(func.distinct(Structure.departement))).where(hosting)).one()
        applications = application_figures(s, envelope if envelope is not None else int(posts))
        candidates = s.exec(select(func.count()).select_from(Candidate)).one()
        by_state = dict(s.exec(select(Case.state, func.count()).group_by(col(Case.state))).all())
        reached = dict(
            s.exec(
                select(History.to_state, func.count(func.distinct(History.case_id))).group_by(col(History.to_state))
            ).all()
        )
        signs = s.exec(
            select(History.at, Case.presented_at, Case.subsidy_cents, Case.contract_type)
            .join(Case, col(Case.id) == col(History.case_id))
            .where(History.event == "sign_contract")
        ).all()
        deadline_rows = s.exec(
            select(History.event, History.data, Structure.departement)
            .join(Case, col(Case.id) == col(History.case_id))
            .join(Structure, col(Structure.id) == col(Case.structure_id))
            .where(col(History.event).in_(["remind", "escalate", "time_out"]))
        ).all()
        cases_by_dep = dict(
            s.exec(
                select(Structure.departement, func.count(col(Case.id)))
                .join(Structure, col(Structure.id) == col(Case.structure_id))
                .group_by(col(Structure.departement))
            ).all()
        )
        rupture_rows = s.exec(
            select(History.data, Case.recovery_cents)
            .join(Case, col(Case.id) == col(History.case_id))
            .where(History.event == "break_contract")
        ).all()
        tranches = s.exec(select(Tranche.case_id, Tranche.amount_cents, Tranche.status, Tranche.paid_at)).all()
        closings = dict(
            s.exec(
                select(History.case_id, func.max(History.at))
                .where(col(History.event).in_(["break_contract", "cancel"]))
                .group_by(col(History.case_id))
            ).all()
        )
        recovery_cents, recoveries = s.exec(
            select(func.coalesce(func.sum(Case.recovery_cents), 0), func.count()).where(col(Case.recovery_cents) > 0)
        ).one()
        last_at = s.exec(select(func.max(History.at))).one()
        first_at = s.exec(select(func.min(History.at))).one()

    sign_days = sorted(round((utc(at) - utc(presented)).total_seconds() / 86400, 1) for at, presented, _, _ in signs)
    contracts_by_type = dict(sorted(Counter(kind or "?" for _, _, _, kind in signs).items()))

    # deadlines: by région (every région listed) and the départements that missed most, per case
    per_dep: dict[str, Counter[str]] = defaultdict(Counter)
    for event, data, dep in deadline_rows:
        level = int((data or {}).get("level", 0))
        kind = {"remind": "reminders", "time_out": "time_outs"}.get(event) or ("anct" if level >= 3 else "prefet")
        per_dep[dep][kind] += 1
    regions: dict[str, Counter[str]] = defaultdict(Counter)
    for code in DEPARTEMENTS:
        regions[region_of(code)]["cases"] += cases_by_dep.get(code, 0)
        for k in DEADLINE_KINDS:
            regions[region_of(code)][k] += per_dep[code][k]
    deadlines_by_region = [
        {"region": r, "cases": c["cases"], **{k: c[k] for k in DEADLINE_KINDS}}
        for r, c in sorted(regions.items(), key=lambda item: item[0])
        if c["cases"]
    ]
    dep_rows: list[dict[str, Any]] = []
    for code, n in cases_by_dep.items():
        c = per_dep[code]
        missed = c["prefet"] + c["anct"] + c["time_outs"]
        dep_rows.append(
            {
                "code": code,
                "name": name_of(code),
                "region": region_of(code),
                "cases": n,
                **{k: c[k] for k in DEADLINE_KINDS},
                "missed": missed,
                "missed_per_100": round(100 * missed / n, 1) if n else 0.0,
            }
        )
    dep_rows.sort(key=lambda r: (-r["missed"], -r["missed_per_100"], r["code"]))

    # ruptures by reason
    rup: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for data, recovery in rupture_rows:
        row = rup[(data or {}).get("reason", "?")]
        row[0] += 1
        row[1] += 1 if recovery else 0
        row[2] += recovery or 0
    ruptures = [
        {"reason": k, "label": RUPTURE_REASONS.get(k, k), "count": v[0], "recoveries": v[1], "recovery_cents": v[2]}
        for k, v in sorted(rup.items(), key=lambda item: (-item[1][0], item[0]))
    ]

    # the monthly cash-flow: committed at signature, paid, cancelled at the rupture, what remains to pay
    committed_by: Counter[str] = Counter()
    for at, _, subsidy, _ in signs:
        committed_by[_month(paris_day(at))] += subsidy or 0
    paid_by: Counter[str] = Counter()
    cancelled_by: Counter[str] = Counter()
    paid = cancelled = scheduled = 0
    for case_id, amount, status, paid_at in tranches:
        if status == "paid" and paid_at is not None:
            paid += amount
            paid_by[_month(paris_day(paid_at))] += amount
        elif status == "cancelled":
            cancelled += amount
            when = closings.get(case_id)
            cancelled_by[_month(paris_day(when)) if when else "?"] += amount
        else:
            scheduled += amount
    cashflow: list[dict[str, Any]] = []
    if first_at is not None and last_at is not None:
        outstanding = 0
        for m in months_between(_month(paris_day(first_at)), _month(paris_day(last_at))):
            outstanding += committed_by[m] - paid_by[m] - cancelled_by[m]
            cashflow.append(
                {
                    "month": m,
                    "label": month_label(m),
                    "committed_cents": committed_by[m],
                    "paid_cents": paid_by[m],
                    "cancelled_cents": cancelled_by[m],
                    "outstanding_cents": outstanding,
                }
            )
    run = dict(run or {})
    employers = sorted((run.get("structures_by_employer") or {}).items(), key=lambda item: -int(item[1]))
    return Figures(
        run=run,
        structures=int(structures),
        posts=int(posts),
        candidates=int(candidates),
        cases=sum(by_state.values()),
        employers=[(k, int(v)) for k, v in employers],
        by_state={s.value: int(by_state.get(s.value, 0)) for s in State},
        reached={s.value: int(reached.get(s.value, 0)) for s in FUNNEL},
        sign_days=sign_days,
        deadlines_by_region=deadlines_by_region,
        top_departements=dep_rows[:TOP_DEPARTEMENTS],
        departements_with_structures=int(deps_with),
        ruptures=ruptures,
        cashflow=cashflow,
        committed_cents=sum(committed_by.values()),
        paid_cents=paid,
        cancelled_cents=cancelled,
        scheduled_cents=scheduled,
        recovery_cents=int(recovery_cents),
        recoveries=int(recoveries),
        contracts_by_type=contracts_by_type,
        mails=_count_files(mail_dir),
        payment_orders=_count_files(payment_dir),
        applications=applications,
    )


@dataclass(frozen=True)
class Headline:
    key: str  # lowercase letters, digits and dashes: also the Prefect artifact's row key
    label: str
    value: str


def french_number(value: int) -> str:
    """``12345`` → ``12 345``: thousands grouped by a no-break space, as French writes them."""
    return f"{value:,}".replace(",", "\u00a0")


def headline(f: Figures) -> list[Headline]:
    """The figures a reader looks at first, formatted in French."""
    t = f.deadline_totals
    refused = f.run.get("refused") or {}
    period = ""
    if f.run.get("start") and f.run.get("end"):
        period = f"{french_day(f.run['start'])} → {french_day(f.run['end'])}"
    rows = [
        ("periode-simulee", "Période simulée", period or "–"),
        ("postes", "Postes attribués", french_number(f.posts)),
        ("structures", "Structures accueillantes", french_number(f.structures)),
        ("departements", "Départements couverts", french_number(f.departements_with_structures)),
        ("candidats", "Candidats du vivier", french_number(f.candidates)),
        ("dossiers", "Dossiers ouverts (présentations)", french_number(f.cases)),
        ("contrats-signes", "Contrats signés", french_number(f.reached[State.CONTRACT_SIGNED.value])),
        ("prises-de-poste", "Prises de poste", french_number(f.reached[State.IN_POST.value])),
        (
            "subventions-soldees",
            "Subventions entièrement versées",
            french_number(f.by_state[State.TRANCHES_PAID.value]),
        ),
        ("postes-vacants", "Postes vacants à la fin du programme", french_number(int(f.run.get("unfilled_posts", 0)))),
        (
            "delai-median-signature",
            "Délai médian présentation → signature",
            "–" if f.median_sign_days is None else f"{f.median_sign_days:.1f} jours".replace(".", ","),
        ),
        ("relances", "Relances", french_number(t["reminders"])),
        ("escalades-prefet", "Escalades au préfet", french_number(t["prefet"])),
        ("escalades-anct", "Escalades à l'ANCT", french_number(t["anct"])),
        ("dossiers-expires", "Dossiers expirés (délai dépassé)", french_number(t["time_outs"])),
        ("ruptures", "Ruptures de contrat", french_number(sum(r["count"] for r in f.ruptures))),
        ("subvention-engagee", "Subvention engagée", euros(f.committed_cents)),
        ("subvention-versee", "Subvention versée", euros(f.paid_cents)),
        ("tranches-annulees", "Tranches annulées", euros(f.cancelled_cents)),
        ("reste-a-verser", "Reste à verser", euros(f.scheduled_cents)),
        (
            "ordres-de-reversement",
            "Ordres de reversement",
            f"{french_number(f.recoveries)} ({euros(f.recovery_cents)})",
        ),
        ("actions-refusees", "Actions refusées par une règle", french_number(sum(refused.values()))),
        ("courriels", "Courriels écrits", french_number(f.mails)),
        ("ordres-de-paiement", "Ordres de paiement écrits", french_number(f.payment_orders)),
    ]
    return [Headline(k, label, v) for k, label, v in rows]
