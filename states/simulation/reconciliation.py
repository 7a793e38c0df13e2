"""The reconciliation: the books and the histories of every case checked, each violation listed.

Every tranche is accounted for (paid + scheduled + cancelled = subsidy, and
nothing left to pay on a closed case); recoveries equal what was paid above
what was earned; no structure holds more contracts than its posts and no
candidate two contracts at any instant; every history is a chain of legal
steps ending in its case's state. ``ok`` means no violation at all.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from states import money
from states.audit import verify
from states.clock import utc
from states.lifecycle import ACTIVE_CONTRACT, TERMINAL, State
from states.machine import is_legal
from states.models import Case, History, Structure, Tranche
from states.outbox.render import euros
from states.policy import Policy


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
    sealed = Check("audit", "Aucune ligne d'historique modifiée ni supprimée (chaîne d'empreintes)")
    verification = verify(engine)
    sealed.checked = verification.rows
    for broken in verification.broken:
        where = f"ligne {broken.history_id}" if broken.history_id is not None else "fin de l'historique"
        sealed.violations.append(f"dossier {broken.case_id}, {where} : empreinte rompue")
    return Reconciliation([books, recovery, quotas, people, chains, sealed, *application_checks(engine, policy)])


def application_checks(engine: Engine, policy: Policy) -> list[Check]:
    """Check the structures' applications: histories legal and sealed, posts validated within the envelopes.

    The envelope is replayed in time order from the committee's first decisions and the imports (the
    simulation asks for no change of posts); a structure's posts are its application's posts validated.
    """
    from states.applications import table
    from states.applications.models import Application, ApplicationHistory
    from states.applications.views import CHAIN
    from states.geo import region_of

    with Session(engine) as s:
        apps = s.execute(
            sql_select(
                col(Application.id),
                col(Application.state),
                col(Application.departement),
                col(Application.posts_validated),
                col(Structure.posts),
            ).join(Structure, col(Structure.id) == col(Application.structure_id))
        ).all()
        rows = s.execute(
            sql_select(
                col(ApplicationHistory.id),
                col(ApplicationHistory.application_id),
                col(ApplicationHistory.event),
                col(ApplicationHistory.from_state),
                col(ApplicationHistory.to_state),
                col(ApplicationHistory.at),
                col(ApplicationHistory.data),
            ).order_by(col(ApplicationHistory.application_id), col(ApplicationHistory.id))
        ).all()
    if not apps:
        return []
    chains = Check("application-history", "Chaque historique de candidature rejoue jusqu'à son état, scellé")
    envelope = Check("envelope", "Postes validés dans l'enveloppe nationale (et régionale), à tout moment")
    posts = Check("application-posts", "Les postes de chaque structure sont ceux validés par le comité")
    last: dict[int, str] = {}
    for hid, app_id, event, src, dst, _at, _data in rows:
        where = f"candidature {app_id}, ligne {hid} ({event} {src or '∅'} → {dst})"
        if not table.is_legal(event, src, dst) or last.get(app_id) != src:
            chains.violations.append(f"{where} : pas une étape du cycle de vie depuis {last.get(app_id) or '∅'}")
        last[app_id] = dst
    departement = {}
    for app_id, state, dep, validated, structure_posts in apps:
        departement[app_id] = dep
        chains.checked += 1
        posts.checked += 1
        if last.get(app_id) != state:
            chains.violations.append(
                f"candidature {app_id} : l'historique finit en {last.get(app_id)}, elle est en {state}"
            )
        if validated != structure_posts:
            posts.violations.append(
                f"candidature {app_id} : {validated} poste(s) validé(s), la structure en a {structure_posts}"
            )
    for broken in verify(engine, chain=CHAIN).broken:
        chains.violations.append(f"candidature {broken.case_id} : empreinte rompue")
    national, regional = 0, Counter[str]()
    for _hid, app_id, event, src, _dst, _at, data in sorted(rows, key=lambda row: (utc(row[5]), row[0])):
        if not (event == "validate" and src == table.AppState.PREFET_REVIEWED.value) and event != "import":
            continue
        envelope.checked += 1
        added = int((data or {}).get("posts", 0))
        region = region_of(departement[app_id])
        national += added
        regional[region] += added
        if national > policy.national_posts:
            envelope.violations.append(f"candidature {app_id} : {national} postes validés pour {policy.national_posts}")
        limit = policy.regional_posts.get(region)
        if limit is not None and regional[region] > limit:
            envelope.violations.append(f"candidature {app_id} : {regional[region]} postes en {region} pour {limit}")
    return [chains, envelope, posts]
