"""The figures of a simulated programme, their reconciliation and the report the ANCT reads.

``collect`` reads the figures from the database with a handful of grouped
queries; ``reconcile`` checks the books and the histories (every tranche
accounted for, recoveries equal to what was paid above what was earned, no
structure over its quota and no candidate under two contracts at any
instant, every history a chain of legal steps ending in its case's state);
``render`` writes a static French HTML page whose charts are inline SVG made
with matplotlib, so the page reads offline with no external asset. Amounts
stay integer cents until they are shown. Nothing here imports Prefect.
"""

from __future__ import annotations

import io
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
from sqlalchemy import Engine, func
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from states import money
from states.clock import paris_day, utc
from states.delivery import CONTRACT_TYPES, MONTHS, RUPTURE_REASONS, euros, french_day, french_instant
from states.geo import DEPARTEMENTS, name_of, region_of
from states.lifecycle import ACTIVE_CONTRACT, LABELS, TERMINAL, State, is_legal
from states.models import Candidate, Case, History, Structure, Tranche
from states.policy import Policy

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

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
    "time_outs": "Délais dépassés (dossiers expirés)",
}
TOP_DEPARTEMENTS = 12
#: The rules that refuse an action, as the report names them (``ConumError.rule``).
RULE_LABELS = {
    "lifecycle": "Étape non permise depuis l'état du dossier (action trop tardive)",
    "smic": "Salaire inférieur au SMIC en vigueur",
    "quota": "Structure au complet (quota de postes)",
    "candidate_contract": "Candidat déjà sous contrat",
    "duplicate": "Candidat déjà présenté à cette structure",
    "chronology": "Date antérieure au dernier événement du dossier",
    "permission": "Acteur non autorisé",
    "contract_dates": "Dates de contrat incohérentes",
    "contract_type": "Type de contrat inconnu",
    "rupture_date": "Date de rupture hors du contrat",
    "rupture_reason": "Motif de rupture inconnu",
    "dates": "Date de formation incohérente",
    "training_org": "Organisme de formation non habilité",
    "conflict": "Dossier modifié entre-temps",
}


def month_label(month: str) -> str:
    """``2026-03`` → ``mars 2026``."""
    year, m = month.split("-")
    return f"{MONTHS[int(m) - 1]} {year}"


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _months_between(first: str, last: str) -> list[str]:
    y, m = (int(p) for p in first.split("-"))
    out = []
    while f"{y:04d}-{m:02d}" <= last:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


# ---------------------------------------------------------------- figures


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
) -> Figures:
    """Read the programme's figures from the database (``run``: the simulation's own counts, if any)."""
    with Session(engine) as s:
        structures, posts = s.exec(select(func.count(), func.coalesce(func.sum(Structure.posts), 0))).one()
        deps_with = s.exec(select(func.count(func.distinct(Structure.departement)))).one()
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
        for m in _months_between(_month(paris_day(first_at)), _month(paris_day(last_at))):
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
    )


# ---------------------------------------------------------------- headline figures


@dataclass(frozen=True)
class Headline:
    key: str  # lowercase letters, digits and dashes: also the Prefect artifact's row key
    label: str
    value: str


def _n(value: int) -> str:
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
        ("postes", "Postes attribués", _n(f.posts)),
        ("structures", "Structures accueillantes", _n(f.structures)),
        ("departements", "Départements couverts", _n(f.departements_with_structures)),
        ("candidats", "Candidats du vivier", _n(f.candidates)),
        ("dossiers", "Dossiers ouverts (présentations)", _n(f.cases)),
        ("contrats-signes", "Contrats signés", _n(f.reached[State.CONTRACT_SIGNED.value])),
        ("prises-de-poste", "Prises de poste", _n(f.reached[State.IN_POST.value])),
        ("subventions-soldees", "Subventions entièrement versées", _n(f.by_state[State.TRANCHES_PAID.value])),
        ("postes-vacants", "Postes vacants à la fin du programme", _n(int(f.run.get("unfilled_posts", 0)))),
        (
            "delai-median-signature",
            "Délai médian présentation → signature",
            "–" if f.median_sign_days is None else f"{f.median_sign_days:.1f} jours".replace(".", ","),
        ),
        ("relances", "Relances", _n(t["reminders"])),
        ("escalades-prefet", "Escalades au préfet", _n(t["prefet"])),
        ("escalades-anct", "Escalades à l'ANCT", _n(t["anct"])),
        ("dossiers-expires", "Dossiers expirés (délai dépassé)", _n(t["time_outs"])),
        ("ruptures", "Ruptures de contrat", _n(sum(r["count"] for r in f.ruptures))),
        ("subvention-engagee", "Subvention engagée", euros(f.committed_cents)),
        ("subvention-versee", "Subvention versée", euros(f.paid_cents)),
        ("tranches-annulees", "Tranches annulées", euros(f.cancelled_cents)),
        ("reste-a-verser", "Reste à verser", euros(f.scheduled_cents)),
        ("ordres-de-reversement", "Ordres de reversement", f"{_n(f.recoveries)} ({euros(f.recovery_cents)})"),
        ("actions-refusees", "Actions refusées par une règle", _n(sum(refused.values()))),
        ("courriels", "Courriels écrits", _n(f.mails)),
        ("ordres-de-paiement", "Ordres de paiement écrits", _n(f.payment_orders)),
    ]
    return [Headline(k, label, v) for k, label, v in rows]


# ---------------------------------------------------------------- reconciliation


@dataclass
class Check:
    key: str
    label: str
    checked: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass
class Reconciliation:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def violations(self) -> list[str]:
        return [v for c in self.checks for v in c.violations]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [
                {"key": c.key, "label": c.label, "checked": c.checked, "ok": c.ok, "violations": c.violations}
                for c in self.checks
            ],
        }


def reconcile(engine: Engine, policy: Policy) -> Reconciliation:
    """Check the books and the histories of every case; list each violation found."""
    with Session(engine) as s:
        cases = s.execute(
            sql_select(
                col(Case.id),
                col(Case.state),
                col(Case.structure_id),
                col(Case.candidate_id),
                col(Case.subsidy_cents),
                col(Case.funded_months),
                col(Case.contract_start),
                col(Case.ended_on),
                col(Case.recovery_cents),
            )
        ).all()
        sums: dict[int, Counter[str]] = defaultdict(Counter)
        for case_id, status, amount in s.exec(
            select(Tranche.case_id, Tranche.status, func.sum(Tranche.amount_cents)).group_by(
                col(Tranche.case_id), col(Tranche.status)
            )
        ).all():
            sums[case_id][status] += int(amount)
        quota = dict(s.exec(select(Structure.id, Structure.posts)).all())
        history = s.execute(
            sql_select(
                col(History.id),
                col(History.case_id),
                col(History.event),
                col(History.from_state),
                col(History.to_state),
                col(History.at),
            ).order_by(col(History.case_id), col(History.id))
        ).all()

    books = Check("tranches", "Tranches versées + prévues + annulées = subvention, pour chaque dossier")
    recovery = Check("recovery", "Versé − acquis = reversement enregistré, après chaque rupture")
    quotas = Check("quota", "Aucune structure au-delà de ses postes attribués, à aucun moment")
    people = Check("candidate", "Aucun candidat sous deux contrats actifs à la fois, à aucun moment")
    chains = Check("history", "Chaque historique rejoue jusqu'à l'état de son dossier")
    info = {}
    for cid, state, sid, cand, subsidy, funded, start, ended, recovered in cases:
        info[cid] = (sid, cand)
        got = sums.get(cid, Counter())
        books.checked += 1
        total = got["paid"] + got["scheduled"] + got["cancelled"]
        if subsidy is None:
            if total:
                books.violations.append(f"dossier {cid} : tranches de {euros(total)} sans subvention")
        elif total != subsidy:
            books.violations.append(
                f"dossier {cid} : versé {euros(got['paid'])} + prévu {euros(got['scheduled'])} + annulé "
                f"{euros(got['cancelled'])} = {euros(total)} ≠ subvention {euros(subsidy)}"
            )
        if State(state) in TERMINAL and got["scheduled"]:
            books.violations.append(f"dossier {cid} : clos ({state}) avec {euros(got['scheduled'])} encore prévus")
        recovery.checked += 1
        if ended is not None and subsidy is not None and start is not None:
            earned = money.earned(policy, subsidy, funded or 0, start, ended)
            expected = max(0, got["paid"] - earned)
            if recovered != expected:
                recovery.violations.append(
                    f"dossier {cid} : versé {euros(got['paid'])} − acquis {euros(earned)} = {euros(expected)} "
                    f"à reverser, enregistré {euros(recovered)}"
                )
        elif recovered:
            recovery.violations.append(f"dossier {cid} : reversement {euros(recovered)} sans fin de contrat")

    # replay every history row in time order: contracts held per structure and per candidate
    states = {cid: state for cid, state, *_ in cases}
    last: dict[int, tuple[str, datetime]] = {}
    for hid, cid, event, src, dst, at in history:
        previous = last.get(cid)
        where = f"dossier {cid}, ligne {hid} ({event} {src or '∅'} → {dst})"
        if not is_legal(event, src, dst):
            chains.violations.append(f"{where} : pas une étape du cycle de vie")
        if previous is None and src is not None:
            chains.violations.append(f"{where} : l'historique ne commence pas par la présentation")
        if previous is not None and previous[0] != src:
            chains.violations.append(f"{where} : part de {src}, le dossier était en {previous[0]}")
        if previous is not None and utc(at) < utc(previous[1]):
            chains.violations.append(f"{where} : antérieure à la ligne précédente")
        last[cid] = (dst, at)
    for cid, state in states.items():
        chains.checked += 1
        if cid not in last:
            chains.violations.append(f"dossier {cid} : aucun historique")
        elif last[cid][0] != state:
            chains.violations.append(f"dossier {cid} : l'historique finit en {last[cid][0]}, le dossier est en {state}")

    active = {s.value for s in ACTIVE_CONTRACT}
    per_structure: Counter[int] = Counter()
    per_candidate: Counter[int] = Counter()
    ordered = sorted(history, key=lambda row: (utc(row[5]), row[0]))
    for hid, cid, _event, src, dst, _at in ordered:
        was, now = src in active, dst in active
        if was == now or cid not in info:
            continue
        sid, cand = info[cid]
        step = 1 if now else -1
        per_structure[sid] += step
        per_candidate[cand] += step
        if per_structure[sid] > quota.get(sid, 0):
            quotas.violations.append(
                f"structure {sid} : {per_structure[sid]} contrats actifs pour {quota.get(sid, 0)} poste(s) "
                f"(dossier {cid}, ligne {hid})"
            )
        if per_candidate[cand] > 1:
            people.violations.append(f"candidat {cand} : {per_candidate[cand]} contrats actifs (dossier {cid})")
    quotas.checked, people.checked = len(quota), len({c for _, c in info.values()})
    return Reconciliation([books, recovery, quotas, people, chains])


# ---------------------------------------------------------------- charts

# Palette (colour-blind safe, after Okabe & Ito)
BLUE, ORANGE, GREEN, RED, PURPLE, GREY, SKY = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#7f7f7f",
    "#56B4E9",
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.fonttype": "none",  # text stays text: smaller, searchable
            "svg.hashsalt": "conum",  # stable element ids: the same figures give the same page
            "font.family": "DejaVu Sans",
            "font.size": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titleweight": "bold",
        }
    )
    return plt


def _svg(fig: Any, title: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    # readable for screen readers; sized by the page, not by points
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 role="img"', text, count=1)
    return text.replace(">", f"><title>{escape(title)}</title>", 1)


def _euros_axis(ax: Any, axis: str = "y") -> None:
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _pos: f"{v / 100 / 1e6:.1f} M€".replace(".", ","))
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def chart_funnel(f: Figures) -> str:
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1.25, 1]})
    steps = [LABELS[s] for s in FUNNEL]
    values = [f.reached[s.value] for s in FUNNEL]
    bars = left.barh(steps[::-1], values[::-1], color=BLUE)
    left.bar_label(bars, labels=[_n(v) for v in values[::-1]], padding=3, fontsize=9)
    left.set_title("Dossiers ayant atteint chaque étape")
    left.margins(x=0.15)
    outcomes = [o for o in OUTCOMES if f.by_state.get(o.value)]
    open_cases = f.cases - sum(f.by_state.get(o.value, 0) for o in OUTCOMES)
    labels = [LABELS[o] for o in outcomes] + (["Encore en cours"] if open_cases else [])
    counts = [f.by_state[o.value] for o in outcomes] + ([open_cases] if open_cases else [])
    colours = [GREEN, RED, ORANGE, PURPLE, SKY, GREY, "#bbbbbb"][: len(counts)]
    bars = right.barh(labels[::-1], counts[::-1], color=colours[::-1])
    right.bar_label(bars, labels=[_n(v) for v in counts[::-1]], padding=3, fontsize=9)
    right.set_title("Issue des dossiers")
    right.margins(x=0.18)
    fig.tight_layout()
    return _svg(fig, "Entonnoir des dossiers par état")


def chart_sign_delays(f: Figures) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.4))
    if f.sign_days:
        top = max(f.sign_days)
        ax.hist(f.sign_days, bins=range(0, int(top) + 2), color=BLUE, edgecolor="white", linewidth=0.4)
        median = f.median_sign_days or 0
        label = f"médiane : {median:.1f} jours".replace(".", ",")
        ax.axvline(median, color=ORANGE, linestyle="--", linewidth=1.5, label=label)
        ax.axvline(15, color=GREY, linestyle=":", linewidth=1.2, label="15 jours")
        ax.legend(loc="upper right", frameon=False, fontsize=9)
    ax.set_xlabel("Jours entre la présentation du candidat et la signature du contrat")
    ax.set_ylabel("Contrats")
    ax.set_title("Délai de la présentation à la signature")
    fig.tight_layout()
    return _svg(fig, "Distribution du délai entre présentation et signature")


def chart_deadlines(f: Figures) -> str:
    plt = _pyplot()
    rows = sorted(f.deadlines_by_region, key=lambda r: sum(r[k] for k in DEADLINE_KINDS))
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.32 * len(rows) + 1.2)))
    names = [r["region"] for r in rows]
    left = [0] * len(rows)
    for kind, colour in zip(DEADLINE_KINDS, (SKY, ORANGE, RED, GREY), strict=True):
        values = [r[kind] for r in rows]
        ax.barh(names, values, left=left, color=colour, label=DEADLINE_LABELS[kind])
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_title("Relances, escalades et délais dépassés, par région")
    ax.set_xlabel("Nombre d'actes du balayage quotidien")
    ax.legend(loc="lower right", frameon=False, fontsize=9)
    fig.tight_layout()
    return _svg(fig, "Délais manqués et escalades par région")


def chart_ruptures(f: Figures) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 2.8))
    rows = sorted(f.ruptures, key=lambda r: r["count"])
    bars = ax.barh([r["label"] for r in rows], [r["count"] for r in rows], color=RED)
    ax.bar_label(
        bars,
        labels=[f"{_n(r['count'])} — {_n(r['recoveries'])} reversement(s), {euros(r['recovery_cents'])}" for r in rows],
        padding=3,
        fontsize=9,
    )
    ax.margins(x=0.6)
    ax.set_title("Ruptures de contrat par motif")
    fig.tight_layout()
    return _svg(fig, "Ruptures par motif")


def chart_cashflow(f: Figures) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.8))
    months = [r["month"] for r in f.cashflow]
    x = list(range(len(months)))
    ax.bar(x, [r["paid_cents"] for r in f.cashflow], color=GREEN, label="Versé dans le mois")
    ax.plot(
        x, [r["outstanding_cents"] for r in f.cashflow], color=BLUE, linewidth=2, label="Reste à verser (fin de mois)"
    )
    cumulative, total = [], 0
    for r in f.cashflow:
        total += r["paid_cents"]
        cumulative.append(total)
    ax.plot(x, cumulative, color=ORANGE, linewidth=1.5, linestyle="--", label="Versé depuis le début")
    step = max(1, len(months) // 12)
    ax.set_xticks(x[::step], [month_label(m).replace(" 20", " ") for m in months[::step]], rotation=30, ha="right")
    _euros_axis(ax)
    ax.set_title("Subvention : versements mensuels et reste à verser")
    ax.legend(loc="upper left", frameon=False, fontsize=9)
    fig.tight_layout()
    return _svg(fig, "Flux mensuel de la subvention")


CHARTS = {
    "entonnoir": chart_funnel,
    "delais-signature": chart_sign_delays,
    "echeances": chart_deadlines,
    "ruptures": chart_ruptures,
    "tresorerie": chart_cashflow,
}


# ---------------------------------------------------------------- the page


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        euros=euros, n=_n, month=month_label, label=lambda s: LABELS[State(s)], day=french_day, instant=french_instant
    )
    return env


def render(
    figures: Figures,
    reconciliation: Reconciliation,
    path: Path | str,
    *,
    generated_at: datetime | None = None,
    parameters: Iterable[tuple[str, str]] = (),
) -> Path:
    """Write the report page at ``path``; return its absolute path."""
    charts = {key: Markup(make(figures)) for key, make in CHARTS.items()}
    html = (
        _env()
        .get_template("report.html.j2")
        .render(
            f=figures,
            headline=headline(figures),
            charts=charts,
            rec=reconciliation,
            states=[(s.value, LABELS[s]) for s in State],
            deadline_kinds=[(k, DEADLINE_LABELS[k]) for k in DEADLINE_KINDS],
            generated_at=generated_at,
            parameters=list(parameters),
            rule_labels=RULE_LABELS,
            contract_labels=CONTRACT_TYPES,
            refused=sorted((figures.run.get("refused") or {}).items(), key=lambda item: -int(item[1])),
        )
    )
    out = Path(path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def markdown_summary(figures: Figures, reconciliation: Reconciliation, report_path: str | None = None) -> str:
    """The headline figures and the reconciliation as Markdown (a Prefect artifact)."""
    lines = ["# Programme simulé", "", "| Indicateur | Valeur |", "|---|---|"]
    lines += [f"| {h.label} | {h.value} |" for h in headline(figures)]
    lines += ["", "## Rapprochement", ""]
    for c in reconciliation.checks:
        lines.append(
            f"- {'OK' if c.ok else 'ÉCART'} — {c.label} ({_n(c.checked)} vérifiés, {len(c.violations)} écart(s))"
        )
        lines += [f"  - {v}" for v in c.violations[:10]]
    if report_path:
        lines += ["", f"Rapport complet : `{report_path}`"]
    return "\n".join(lines) + "\n"
