"""A whole programme in fast-forward: generated structures and people acting day by day.

The generator builds a programme shaped like the real one (employers in every
département, overseas included, one to three posts each, a larger pool of
candidates, a few dozen approved training organisations) from one seed. The
behaviour model then plays the people: the national platform presents
candidates to free posts, structures answer (sometimes late, sometimes never),
candidates withdraw, contracts are signed, trainings start late, contracts
break and freed posts are filled again. Every action goes through the real
transition service, one write transaction per simulated day with a savepoint
per action, so a refused action is an outcome to count, not a crash. Once a
day the deadline sweep, the payment run and the outbox delivery run as their
deployments would; the delivery, like its deployment, in a process of its own
(``states.deliverer``), rendering each day's mail from a snapshot of that day
while the day loop goes on.

The same seed gives the same programme and the same figures to the cent: all
randomness comes from two ``random.Random`` instances seeded here, and the
simulated clock is the only clock. Nothing in this module imports Prefect;
the flow in ``flows/simulate.py`` runs it month by month.
"""

from __future__ import annotations

import heapq
import logging
import random
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, func
from sqlalchemy.engine import make_url
from sqlmodel import Session, col, select

from states import batch, service
from states.clock import PARIS, add_months, utc
from states.config import Settings
from states.db import get_engine, has_schema, migrate, write_session
from states.deliverer import BackgroundDelivery
from states.errors import BadInput, ConumError
from states.geo import DEPARTEMENTS, region_of
from states.models import Candidate, Case, Outbox, Structure, TrainingOrg, Tranche
from states.money import funded_months
from states.policy import Policy

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: The programme's first day when none is given (a Monday).
DEFAULT_START = date(2026, 1, 5)
#: Largest programme the command accepts: the real one has about 4,000 posts.
MAX_POSTS = 100_000


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Employer:
    """One kind of host structure: its share of the employers and how many posts it usually gets."""

    key: str
    label: str  # French, shown in the report
    kind: str  # public | private (the subsidy base depends on it)
    weight: float  # relative number of structures of this kind
    posts: tuple[float, float, float]  # relative chances of 1, 2 and 3 posts


#: The mix of employers of the real programme (2022): about 1,100 communes, 484 EPCIs and 1,200+
#: associations, plus a few dozen départements, régions and libraries with their own posts.
EMPLOYERS: tuple[Employer, ...] = (
    Employer("commune", "Communes", "public", 1100, (0.78, 0.17, 0.05)),
    Employer("epci", "Intercommunalités (EPCI)", "public", 484, (0.55, 0.30, 0.15)),
    Employer("association", "Associations", "private", 1250, (0.80, 0.15, 0.05)),
    Employer("departement", "Départements", "public", 45, (0.20, 0.30, 0.50)),
    Employer("region", "Régions", "public", 8, (0.10, 0.30, 0.60)),
    Employer("mediatheque", "Bibliothèques et médiathèques", "public", 60, (0.85, 0.12, 0.03)),
)

Span = tuple[int, int]  # an inclusive range of days


@dataclass(frozen=True)
class Rates:
    """How the people of the programme behave. Shares are probabilities, spans inclusive day ranges.

    The defaults give a programme close to the real one: most posts filled
    within a few months, one presentation in five without a contract, about one
    contract in six broken before the end of its funding.
    """

    #: Structures open their posts over this many days after the start (most of them early).
    opening_days: int = 240
    #: The platform presents a candidate to a free post after this many days.
    present_days: Span = (2, 12)
    #: Chance that the candidate comes from the post's own département when one is free there.
    local: float = 0.75
    #: Chance that the candidate comes from the post's région otherwise.
    regional: float = 0.6
    #: Chance that the candidate presented is already presented to another structure
    #: (the first contract signed closes the other case).
    multi: float = 0.08
    #: Structure's answer to a presentation: declines (within ``answer_days``) ...
    decline: float = 0.12
    #: ... never answers (reminder at day 10, time-out at day 15) ...
    silent: float = 0.04
    #: ... answers after the time-out (the action is refused) ...
    too_late: float = 0.03
    #: ... answers after the reminder but before the deadline; the others answer in ``answer_days``.
    late_answer: float = 0.15
    answer_days: Span = (1, 9)
    late_answer_days: Span = (10, 14)
    too_late_days: Span = (16, 24)
    #: Chance that the candidate withdraws, at ``withdraw_days`` after the presentation (refused once signed).
    withdraw: float = 0.04
    withdraw_days: Span = (2, 20)
    #: Chance that the préfet cancels a case still before its contract.
    cancel: float = 0.01
    cancel_days: Span = (3, 12)
    #: After selection: contact with a training organisation, then signature.
    contact_days: Span = (1, 5)
    sign_days: Span = (1, 8)
    #: Signature after the préfet's escalation (day 15 from selection) ...
    late_sign: float = 0.12
    late_sign_days: Span = (16, 29)
    #: ... after the ANCT's escalation (day 30) ...
    very_late_sign: float = 0.03
    very_late_sign_days: Span = (31, 44)
    #: ... never (time-out at day 45).
    stall: float = 0.02
    #: Chance that the first salary offered is below the SMIC in force (refused, corrected the next day).
    below_smic: float = 0.02
    #: The contract starts this many days after its signature.
    contract_start_days: Span = (5, 30)
    #: Contract types and their shares.
    contract_types: tuple[tuple[str, float], ...] = (
        ("CDD", 0.70),
        ("PEC", 0.14),
        ("contrat_de_projet", 0.08),
        ("CDI", 0.08),
    )
    #: Contract lengths in months and their shares, by type (a CDI has no end).
    contract_months: tuple[tuple[str, tuple[tuple[int, float], ...]], ...] = (
        ("CDD", ((12, 0.12), (18, 0.13), (24, 0.50), (36, 0.25))),
        ("PEC", ((12, 0.45), (24, 0.55))),
        ("contrat_de_projet", ((18, 0.20), (24, 0.50), (36, 0.30))),
    )
    #: Share of contracts paid exactly the SMIC; the others get up to ``salary_premium`` above it.
    at_smic: float = 0.15
    salary_premium: float = 0.20
    #: Training starts this many days after the contract start; late ones after the escalation (day 30).
    training_days: Span = (0, 14)
    late_training: float = 0.08
    late_training_days: Span = (31, 50)
    #: Training ends this many days after its expected end (4 months); late ones after the escalation.
    completion_days: Span = (0, 7)
    late_completion: float = 0.05
    late_completion_days: Span = (16, 40)
    #: Chance that a contract breaks before its funding ends, and the reasons' shares.
    rupture: float = 0.16
    rupture_reasons: tuple[tuple[str, float], ...] = (
        ("demission", 0.45),
        ("non_reconduction_cdd", 0.25),
        ("fin_de_subventionnement", 0.15),
        ("licenciement", 0.15),
    )
    #: The structure records a rupture this many days after its date.
    rupture_declared_days: Span = (0, 5)
    #: Chance that a post freed by a rupture is filled again, after ``replace_days``.
    replace: float = 0.75
    replace_days: Span = (10, 45)
    #: Chance that a candidate leaves the pool for good after withdrawing, or after a rupture.
    leave_after_withdraw: float = 0.6
    leave_after_rupture: float = 0.4
    #: When no candidate is free, the platform tries again this many days later.
    retry_days: int = 7
    #: New presentations stop this many months after the start.
    recruitment_months: int = 15
    #: The simulation stops at the latest this many months after the start.
    horizon_months: int = 42

    def check(self) -> None:
        """Refuse rates that cannot describe people (a share outside 0..1, a span backwards)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not 0.0 <= value <= 1.0:
                raise BadInput(f"rate '{f.name}' is {value}: a share must lie between 0 and 1")
            if (
                isinstance(value, tuple)
                and len(value) == 2
                and all(isinstance(v, int) for v in value)
                and not 0 <= value[0] <= value[1]
            ):
                raise BadInput(f"span '{f.name}' is {value}: give (low, high) with 0 <= low <= high")
        answers = self.decline + self.silent + self.too_late + self.late_answer
        if answers > 1.0:
            raise BadInput(f"decline + silent + too_late + late_answer is {answers:.2f}: it must not exceed 1")
        signs = self.late_sign + self.very_late_sign + self.stall
        if signs > 1.0:
            raise BadInput(f"late_sign + very_late_sign + stall is {signs:.2f}: it must not exceed 1")
        if self.horizon_months <= self.recruitment_months:
            raise BadInput("horizon_months must be longer than recruitment_months: contracts need time to run")


@dataclass(frozen=True)
class Config:
    """What one simulation is: its size, its seed, its first day, the employers' mix and the rates."""

    posts: int = 4000
    seed: int = 1
    start: date = DEFAULT_START
    #: Candidates in the national pool per post.
    candidates_per_post: float = 1.6
    training_orgs: int = 36
    #: Below this many posts, structures are not forced into every département.
    cover_all_from: int = 400
    employers: tuple[Employer, ...] = EMPLOYERS
    rates: Rates = field(default_factory=Rates)


def make_config(posts: int, seed: int, start: str | date | None, policy: Policy, **extra: Any) -> Config:
    """Validate what a user gives and return the configuration; raise ``BadInput`` saying what to fix."""
    if isinstance(posts, bool) or not isinstance(posts, int) or posts < 1:
        raise BadInput(f"--posts must be a whole number of at least 1, got {posts!r}: give e.g. --posts 4000")
    if posts > MAX_POSTS:
        raise BadInput(f"--posts {posts} is more than {MAX_POSTS:,}: the real programme has about 4,000 posts")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise BadInput(f"--seed must be a whole number, got {seed!r}")
    if start is None:
        first = DEFAULT_START
    elif isinstance(start, date):
        first = start
    else:
        try:
            first = date.fromisoformat(str(start).strip())
        except ValueError:
            raise BadInput(f"--start '{start}' is not a date: write it as YYYY-MM-DD, e.g. 2026-01-05") from None
    if policy.smic_on(first) is None:
        since = policy.smic[0].since if policy.smic else None
        raise BadInput(
            f"--start {first} is before the first SMIC the policy knows ({since}): start on or after it, "
            "or add the rate in force to the policy file"
        )
    config = Config(posts=posts, seed=seed, start=first, **extra)
    config.rates.check()
    return config


# ---------------------------------------------------------------- the generated programme


@dataclass(frozen=True)
class StructureSpec:
    name: str
    employer: str
    kind: str
    departement: str
    posts: int
    email: str
    opens_after: int  # days after the start


@dataclass(frozen=True)
class CandidateSpec:
    name: str
    email: str
    departement: str


@dataclass(frozen=True)
class Programme:
    structures: tuple[StructureSpec, ...]
    candidates: tuple[CandidateSpec, ...]
    training_orgs: tuple[tuple[str, str], ...]  # (name, email)


def _parts(text: str) -> tuple[str, ...]:
    return tuple(text.split("|"))


#: Name parts, split on "|": plausible, not real, structures and people.
_TOWNS = _parts(
    "Saint-Martin|Saint-Pierre|Saint-Jean|Saint-Laurent|Saint-Germain|Sainte-Marie|Villeneuve|Beaumont|Montfort|"
    "Châteauneuf|Fontaine|Neuville|Rochefort|Belleville|Clairvaux|Montagnac|Bellegarde|Mirebeau|Valmont|Lavergne|"
    "Champagnac|Roquefort|Malville|Bourgneuf|Montreuil|Laval-Dieu|Val-d'Arc|Pont-Saint-Esprit|Les Essarts|"
    "La Chapelle|Le Bourg|Pradelles|Fleurance|Marcillac|Aubigny|Brassac|Cazères|Lussac|Vernon|Mornant|Saugues|"
    "Treffort|Ploërmel-le-Haut|Quintin-sur-Mer|Auray-les-Bois|Sorgues"
)
_SUFFIXES = ("", "", "", "-sur-Loire", "-sur-Mer", "-les-Bains", "-en-Vallée", "-le-Château", "-la-Forêt")
_ASSOCIATIONS = _parts(
    "Association Les Connectés|Association Clic et Lien|Numérique solidaire|Association Passerelles|Centre social|"
    "Maison des jeunes et de la culture|Familles rurales|Ligue de l'enseignement|Espace de vie sociale|"
    "Association Point d'appui numérique|Régie de quartier|Tiers-lieu La Fabrique"
)
_AUTHORS = _parts(
    "François-Mitterrand|Émile-Zola|Victor-Hugo|Louise-Michel|Simone-Veil|Jules-Verne|George-Sand|Aimé-Césaire|"
    "Marguerite-Duras|Albert-Camus|Colette|Jean-Jaurès"
)
_FIRST = _parts(
    "Amina|Bruno|Chloé|David|Émilie|Farid|Gaëlle|Hugo|Inès|Julien|Karima|Léa|Mathieu|Nadia|Olivier|Pauline|Quentin|"
    "Rachida|Sébastien|Thi-Lan|Ulysse|Valérie|William|Yasmine|Zoé|Maëlys|Kévin|Sandrine|Mamadou|Laetitia|Anthony|"
    "Océane|Moana|Teva|Jessica|Loïc|Fatou|Nicolas|Camille|Mehdi"
)
_LAST = _parts(
    "Martin|Bernard|Dubois|Thomas|Robert|Richard|Petit|Durand|Leroy|Moreau|Simon|Laurent|Lefebvre|Michel|Garcia|"
    "David|Bertrand|Roux|Vincent|Fournier|Morel|Girard|André|Mercier|Dupont|Lambert|Bonnet|François|Martinez|Hoarau|"
    "Payet|Diallo|Benali|Nguyen|Le Gall|Kerbrat|Mendy|Tehei|Joseph|Rivière"
)
_TRAINERS = ("Greta", "Afpa", "Cnam", "Simplon", "Ifra", "Cepreco")


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "".join(c if c.isalnum() else "-" for c in ascii_text).strip("-").replace("--", "-")


def _weighted(rng: random.Random, items: Sequence[tuple[Any, float]]) -> Any:
    total = sum(w for _, w in items)
    r = rng.random() * total
    for item, w in items:
        r -= w
        if r < 0:
            return item
    return items[-1][0]


def _between(rng: random.Random, span: Span) -> int:
    return rng.randint(span[0], span[1])


def generate(config: Config) -> Programme:
    """Build the structures, candidates and training organisations of a programme from its seed."""
    rng = random.Random(f"conum-programme-{config.seed}")
    deps = list(DEPARTEMENTS.values())
    by_population = [(d.code, float(d.population_k)) for d in deps]
    cover = [d.code for d in deps] if config.posts >= config.cover_all_from else []
    rng.shuffle(cover)
    employers = [(e, e.weight) for e in config.employers]
    councils: set[str] = set()  # at most one département council per département, one région council per région
    structures: list[StructureSpec] = []
    total = 0
    while total < config.posts:
        dep = cover.pop() if cover else _weighted(rng, by_population)
        employer: Employer = _weighted(rng, employers)
        key = employer.key if employer.key not in ("departement", "region") else ""
        if employer.key == "departement" and f"d{dep}" not in councils:
            councils.add(f"d{dep}")
            key = "departement"
        elif employer.key == "region" and f"r{region_of(dep)}" not in councils:
            councils.add(f"r{region_of(dep)}")
            key = "region"
        if not key:  # that council exists already: a commune instead
            employer = next(e for e in config.employers if e.key == "commune")
            key = employer.key
        town = rng.choice(_TOWNS) + rng.choice(_SUFFIXES)
        name = {
            "commune": f"Commune de {town}",
            "epci": rng.choice((f"Communauté de communes du Pays de {town}", f"Communauté d'agglomération de {town}")),
            "association": f"{rng.choice(_ASSOCIATIONS)} de {town}",
            "departement": f"Conseil départemental — {DEPARTEMENTS[dep].name}",
            "region": f"Région {region_of(dep)}",
            "mediatheque": rng.choice(
                (f"Médiathèque {rng.choice(_AUTHORS)} de {town}", f"Réseau des médiathèques de {town}")
            ),
        }.get(key, f"Commune de {town}")
        posts = min(_weighted(rng, list(zip((1, 2, 3), employer.posts, strict=True))), config.posts - total)
        opens = int(rng.triangular(0, config.rates.opening_days, 0))
        email = f"numerique@{_slug(name)[:40].strip('-')}-{dep.lower()}-{len(structures) + 1}.fr"
        structures.append(StructureSpec(name, employer.key, employer.kind, dep, posts, email, opens))
        total += posts
    count = max(1, round(config.posts * config.candidates_per_post))
    candidates = []
    for i in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        dep = _weighted(rng, by_population)
        candidates.append(CandidateSpec(f"{first} {last}", f"{_slug(first)}.{_slug(last)}.{i + 1}@exemple.fr", dep))
    regions = sorted({region_of(d.code) for d in deps})
    pairs = [(t, r) for t in _TRAINERS for r in regions]
    orgs = rng.sample(pairs, min(config.training_orgs, len(pairs)))
    training = tuple((f"{t} {r}", f"formation-cnfs@{_slug(t)}-{_slug(r)}.fr") for t, r in orgs)
    return Programme(tuple(structures), tuple(candidates), training)


# ---------------------------------------------------------------- the behaviour model


class IndexedSet:
    """Integers with O(1) add, discard and random choice, in an order that depends only on the operations."""

    def __init__(self) -> None:
        self.items: list[int] = []
        self.pos: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, x: object) -> bool:
        return x in self.pos

    def add(self, x: int) -> None:
        if x not in self.pos:
            self.pos[x] = len(self.items)
            self.items.append(x)

    def discard(self, x: int) -> None:
        i = self.pos.pop(x, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.pos[last] = i

    def choice(self, rng: random.Random) -> int:
        return self.items[rng.randrange(len(self.items))]


class Pool:
    """The candidates free to be presented, by département."""

    def __init__(self) -> None:
        self.by_dep: dict[str, IndexedSet] = {code: IndexedSet() for code in DEPARTEMENTS}
        self.deps_of_region: dict[str, list[str]] = {}
        for code in DEPARTEMENTS:
            self.deps_of_region.setdefault(region_of(code), []).append(code)
        self.dep_of: dict[int, str] = {}

    def __len__(self) -> int:
        return sum(len(s) for s in self.by_dep.values())

    def add(self, candidate: int, dep: str) -> None:
        self.dep_of[candidate] = dep
        self.by_dep[dep].add(candidate)

    def discard(self, candidate: int) -> None:
        dep = self.dep_of.get(candidate)
        if dep is not None:
            self.by_dep[dep].discard(candidate)

    def _among(self, rng: random.Random, codes: Sequence[str]) -> int | None:
        sizes = [(code, len(self.by_dep[code])) for code in codes]
        total = sum(n for _, n in sizes)
        if total == 0:
            return None
        r = rng.randrange(total)
        for code, n in sizes:
            if r < n:
                return self.by_dep[code].items[r]
            r -= n
        return None  # pragma: no cover - r < total

    def draw(self, rng: random.Random, dep: str, rates: Rates) -> int | None:
        """Pick a free candidate for a post in ``dep``: local first, then the région, then anywhere."""
        local = self.by_dep[dep]
        if local and rng.random() < rates.local:
            return local.choice(rng)
        if rng.random() < rates.regional:
            found = self._among(rng, self.deps_of_region[region_of(dep)])
            if found is not None:
                return found
        return self._among(rng, list(self.by_dep))


@dataclass
class Slot:
    """One attributed post and what the model knows of it."""

    structure: int
    departement: str
    status: str = "waiting"  # waiting | presenting | recruiting | filled | done | vacant


@dataclass
class Track:
    """The model's view of one case: enough to decide what its people do next."""

    case: int
    slot: int
    structure: int
    candidate: int
    phase: str = "pre"  # pre (before the contract) | contract | closed
    state: str = "candidate_presented"
    contract_start: date | None = None
    contract_end: date | None = None
    selected_on: date | None = None
    rupture: tuple[str, date] | None = None


@dataclass
class Plan:
    """An action a person will try at an instant."""

    at: datetime
    kind: str  # present | fire
    slot: int = -1
    case: int = 0
    event: str = ""
    actor: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    #: Tried even if the case closed meanwhile: people who act late do not know.
    blind: bool = False


@dataclass
class MonthReport:
    """What happened during one simulated month."""

    month: str
    days: int = 0
    actions: int = 0
    refused: int = 0
    reminded: int = 0
    escalated: int = 0
    timed_out: int = 0
    payments: int = 0
    paid_cents: int = 0
    open_cases: int = 0


@dataclass
class RunStats:
    """Counts of the whole run (the figures the database cannot tell)."""

    seed: int
    posts: int
    start: date
    end: date | None = None
    days: int = 0
    structures_by_employer: dict[str, int] = field(default_factory=dict)
    candidates: int = 0
    training_orgs: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    refused_events: Counter[str] = field(default_factory=Counter)
    reminded: int = 0
    escalated: int = 0
    timed_out: int = 0
    payments: int = 0
    paid_cents: int = 0
    batch_failures: int = 0
    unfilled_posts: int = 0
    open_at_end: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"] = self.start.isoformat()
        d["end"] = self.end.isoformat() if self.end else None
        d["actions"], d["refused"], d["refused_events"] = (
            dict(sorted(self.actions.items())),
            dict(sorted(self.refused.items())),
            dict(sorted(self.refused_events.items())),
        )
        return d


def at_paris(day: date, hour: int, minute: int = 0) -> datetime:
    """Return ``hour:minute`` in Paris on ``day`` as a UTC instant."""
    return datetime.combine(day, time(hour, minute), tzinfo=PARIS).astimezone(UTC)


def _months(first: date, last: date) -> list[str]:
    out, y, m = [], first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


#: Delivers the outbox rows due at an instant, at most ``limit`` of them (``states.delivery.deliver``).
Deliver = Callable[[Engine, datetime, Settings, int | None], Any]
#: How the outbox is delivered: in a process of its own beside the day loop (``states.deliverer``), by a
#: function called in the day loop, or not at all.
Delivery = Deliver | Literal["background"] | None


def _outbox_delivery(engine: Engine, at: datetime, settings: Settings, limit: int | None) -> Any:
    from states.delivery import deliver

    return deliver(engine, at, settings, kinds=None, limit=limit)


class Simulation:
    """The day loop: people's actions, then the sweep, the payments and the delivery, day after day.

    Call ``setup`` once on an empty, migrated database, then ``run`` (or
    ``run_month`` for each label of ``months``, which is what the Prefect flow
    does), then read the figures from the database (``states.report``).
    """

    #: When each daily batch runs (Paris hours): the sweep before people act, payments and mail after.
    SWEEP_HOUR, DAY_FROM, DAY_TO, PAY_HOUR, DELIVER_HOUR = 7, 9, 18, 20, 21
    NEVER = datetime.max.replace(tzinfo=UTC)

    def __init__(
        self,
        engine: Engine,
        policy: Policy,
        config: Config,
        *,
        out_dir: Path | str,
        deliver: Delivery = "background",
    ) -> None:
        self.engine, self.policy, self.config, self.rates = engine, policy, config, config.rates
        self.out_dir = Path(out_dir)
        self.mail_dir, self.payment_dir = self.out_dir / "mail", self.out_dir / "payments"
        # never SMTP: a simulation writes its e-mails as files, whatever the environment says
        self.settings = Settings(mail_dir=str(self.mail_dir), payment_dir=str(self.payment_dir), smtp_host=None)
        self.deliver = deliver
        self.courier: BackgroundDelivery | None = None
        self.rng = random.Random(f"conum-behaviour-{config.seed}")
        self.stats = RunStats(seed=config.seed, posts=config.posts, start=config.start)
        self.flow_run_id: str | None = None
        self.horizon = add_months(config.start, self.rates.horizon_months)
        self.recruit_until = add_months(config.start, self.rates.recruitment_months)
        self.today = config.start
        self.slots: list[Slot] = []
        self.tracks: dict[int, Track] = {}
        self.open_tracks = 0
        self.pool = Pool()
        self.open_cases_of: dict[int, list[int]] = {}  # candidate -> its cases before contract
        self.departement_of: dict[int, str] = {}  # candidate -> département
        self.gone: set[int] = set()  # candidates who left the pool for good
        self.employed: set[int] = set()
        self.orgs: list[int] = []
        self.heap: list[tuple[datetime, int, Plan]] = []
        self.seq = 0
        self.ready = False
        # what the daily batches have to do, known without asking the database (None: ask it)
        self._next_due: datetime | None = None
        self._next_tranche: date | None = None
        self._outbox_dirty = False

    # ------------------------------------------------------------ setup

    def setup(self) -> None:
        """Insert the generated programme and plan the first presentations."""
        if self.deliver == "background" and self.courier is None:
            self.courier = BackgroundDelivery(self.engine, self.settings)  # it starts while the programme is made
        prog = generate(self.config)
        with write_session(self.engine) as s:
            ids = self._insert(s, prog)
        structure_ids, candidate_ids, self.orgs = ids
        for spec, sid in zip(prog.structures, structure_ids, strict=True):
            for _ in range(spec.posts):
                self.slots.append(Slot(sid, spec.departement))
                self._plan_present(len(self.slots) - 1, spec.opens_after)
        for person, cid in zip(prog.candidates, candidate_ids, strict=True):
            self.departement_of[cid] = person.departement
            self.pool.add(cid, person.departement)
        labels = {e.key: e.label for e in self.config.employers}
        self.stats.structures_by_employer = dict(Counter(labels[s.employer] for s in prog.structures))
        self.stats.candidates, self.stats.training_orgs = len(prog.candidates), len(prog.training_orgs)
        self.ready = True

    @staticmethod
    def _insert(s: Session, prog: Programme) -> tuple[list[int], list[int], list[int]]:
        """Add the rows in bulk: the generator only produces valid data (codes from ``states.geo``)."""
        structures = [
            Structure(name=p.name, kind=p.kind, departement=p.departement, posts=p.posts, email=p.email)
            for p in prog.structures
        ]
        candidates = [Candidate(name=p.name, email=p.email, departement=p.departement) for p in prog.candidates]
        orgs = [TrainingOrg(name=n, email=e) for n, e in prog.training_orgs]
        s.add_all(structures)
        s.add_all(candidates)
        s.add_all(orgs)
        s.flush()
        return (
            [r.id or 0 for r in structures],
            [r.id or 0 for r in candidates],
            [r.id or 0 for r in orgs],
        )

    # ------------------------------------------------------------ planning

    def _push(self, plan: Plan) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (plan.at, self.seq, plan))

    def _when(self, day: date) -> datetime:
        """A random instant of the working day ``day``."""
        minutes = self.rng.randrange((self.DAY_TO - self.DAY_FROM) * 60)
        return at_paris(day, self.DAY_FROM + minutes // 60, minutes % 60)

    def _after(self, days: int) -> datetime:
        """A random instant ``days`` days from today (at least the next day: people act one step a day)."""
        return self._when(self.today + timedelta(days=max(1, days)))

    def _plan_present(self, slot: int, days: int) -> None:
        day = self.today + timedelta(days=days)
        if day > self.recruit_until:
            self.slots[slot].status = "vacant"
            return
        self.slots[slot].status = "presenting"
        self._push(Plan(self._when(max(day, self.today)), "present", slot=slot))

    def _plan(
        self, track: Track, days: int, event: str, actor: str, data: dict[str, Any] | None = None, blind: bool = False
    ) -> None:
        plan = Plan(self._after(days), "fire", case=track.case, event=event, actor=actor, data=data or {}, blind=blind)
        self._push(plan)

    # ------------------------------------------------------------ the loop

    @property
    def finished(self) -> bool:
        return self.ready and ((not self.heap and self.open_tracks == 0) or self.today > self.horizon)

    def months(self) -> list[str]:
        """The month labels (YYYY-MM) from the start to the horizon; the run may finish earlier."""
        return _months(self.config.start, self.horizon)

    def run(self, progress: Callable[[MonthReport], None] | None = None) -> RunStats:
        """Run every month until the programme is over; return the run's counts."""
        if not self.ready:
            self.setup()
        for label in self.months():
            if self.finished:
                break
            report = self.run_month(label)
            if progress:
                progress(report)
        return self.finish()

    def run_month(self, label: str) -> MonthReport:
        """Run the days of month ``label`` (YYYY-MM) not run yet, until the programme is over."""
        year, month = (int(p) for p in label.split("-"))
        report = MonthReport(label)
        before = (self.stats.reminded, self.stats.escalated, self.stats.timed_out, self.stats.payments)
        acted, refused, paid = sum(self.stats.actions.values()), sum(self.stats.refused.values()), self.stats.paid_cents
        while not self.finished and (self.today.year, self.today.month) == (year, month):
            self.run_day(self.today)
            self.today += timedelta(days=1)
            report.days += 1
        report.actions = sum(self.stats.actions.values()) - acted
        report.refused = sum(self.stats.refused.values()) - refused
        report.reminded = self.stats.reminded - before[0]
        report.escalated = self.stats.escalated - before[1]
        report.timed_out = self.stats.timed_out - before[2]
        report.payments = self.stats.payments - before[3]
        report.paid_cents = self.stats.paid_cents - paid
        report.open_cases = self.open_tracks
        return report

    def close(self) -> None:
        """Stop the delivery process, if any (what it has not sent stays pending in the outbox)."""
        if self.courier is not None:
            self.courier.close()

    def finish(self) -> RunStats:
        """Wait for the last mail, close the run's counts (last day, posts never filled, cases still open)."""
        if self.courier is not None:
            self.courier.drain()
        self.stats.end = self.today - timedelta(days=1)
        self.stats.unfilled_posts = sum(1 for s in self.slots if s.status in ("vacant", "waiting", "presenting"))
        self.stats.open_at_end = self.open_tracks
        return self.stats

    def run_day(self, day: date) -> None:
        """One simulated day: the sweep at 07:00, people from 09:00 to 18:00, payments, then the mail.

        A batch runs when it has work: the sweep when a deadline step is due, the payment run when a
        tranche is due, the delivery when the outbox received rows (or holds some to retry). On the
        other days its deployment would run and find nothing; skipping it changes no row.
        """
        self.today = day
        self.stats.days += 1
        sweep_at = at_paris(day, self.SWEEP_HOUR)
        if self._sweep_due(sweep_at):
            swept = batch.sweep(self.engine, sweep_at, self.policy)
            self._next_due = None
            self.stats.reminded += swept.reminded
            self.stats.escalated += swept.escalated
            self.stats.timed_out += swept.timed_out
            self.stats.batch_failures += len(swept.failures)
            self._outbox_dirty |= bool(swept.steps)
            for step in swept.steps:
                if step.action == "time_out":
                    self._closed(step.case_id, "expired", back_to_pool=True)
        acted = self._act(day)
        if acted:
            self._next_due = None  # any action may start a deadline clock
            self._outbox_dirty = True
            if acted["complete_training"]:  # a case took post: its first tranche is due; others only go away
                self._next_tranche = None
        if self._pay_due(day):
            paid = batch.pay(self.engine, at_paris(day, self.PAY_HOUR), self.policy)
            self._next_tranche = None
            self.stats.payments += paid.paid
            self.stats.paid_cents += paid.amount_cents
            self.stats.batch_failures += len(paid.failures)
            self._outbox_dirty |= bool(paid.payments)
            for p in paid.payments:
                if p.final:
                    track = self.tracks.get(p.case_id)
                    if track is not None and track.phase != "closed":
                        self.slots[track.slot].status = "done"
                        self._closed(p.case_id, "tranches_paid", back_to_pool=False)
        if self.courier is not None and self._outbox_dirty:
            self.courier.day_over(at_paris(day, self.DELIVER_HOUR))
            self._outbox_dirty = False
        elif callable(self.deliver) and self._outbox_dirty:
            deliver_at = at_paris(day, self.DELIVER_HOUR)
            waiting = self._outbox_waiting(deliver_at)
            report = self.deliver(self.engine, deliver_at, self.settings, waiting) if waiting else None
            self._outbox_dirty = bool(getattr(report, "retried", 0))

    def _sweep_due(self, at: datetime) -> bool:
        """Tell whether a case has a deadline step due at ``at`` (the earliest ``due_at``, read once per change)."""
        if self._next_due is None:
            with Session(self.engine) as s:
                first = s.exec(select(func.min(Case.due_at))).one()
            self._next_due = utc(first) if first is not None else self.NEVER
        return self._next_due <= at

    def _outbox_waiting(self, at: datetime) -> int:
        """Count the outbox rows due at ``at``: the delivery then stops after them, without a last empty claim."""
        with Session(self.engine) as s:
            return int(
                s.exec(
                    select(func.count())
                    .select_from(Outbox)
                    .where(col(Outbox.status).in_(["pending", "sending"]), col(Outbox.next_attempt_at) <= at)
                ).one()
            )

    def _pay_due(self, day: date) -> bool:
        """Tell whether a tranche of a case in post is due on ``day`` (read once per change)."""
        if self._next_tranche is None:
            with Session(self.engine) as s:
                first = s.exec(
                    select(func.min(Tranche.due_on))
                    .join(Case, col(Case.id) == col(Tranche.case_id))
                    .where(col(Case.state) == "in_post", col(Tranche.status) == "scheduled")
                ).one()
            self._next_tranche = first if first is not None else date.max
        return self._next_tranche <= day

    def _act(self, day: date) -> Counter[str]:
        """Let the people act; return the events that changed a case, counted."""
        end = at_paris(day + timedelta(days=1), 0)
        due: list[Plan] = []
        while self.heap and self.heap[0][0] < end:
            due.append(heapq.heappop(self.heap)[2])
        if not due:
            return Counter()
        before = Counter(self.stats.actions)
        with write_session(self.engine) as s:
            for plan in due:
                self._try(s, plan)
        return Counter(self.stats.actions) - before

    def _try(self, s: Session, plan: Plan) -> None:
        if plan.kind == "present":
            self._present(s, plan)
            return
        track = self.tracks[plan.case]
        if (track.phase == "closed" and not plan.blind) or (plan.event == "cancel" and track.phase != "pre"):
            return  # the people know the case is over (or its contract signed): they do nothing
        try:
            with s.begin_nested():
                case = service.fire(
                    s,
                    plan.case,
                    plan.event,
                    actor=plan.actor,
                    at=plan.at,
                    data=plan.data,
                    policy=self.policy,
                    flow_run_id=self.flow_run_id,
                )
        except ConumError as exc:
            self.stats.refused[exc.rule] += 1
            self.stats.refused_events[plan.event] += 1
            self._refused(track, plan, exc)
            return
        self.stats.actions[plan.event] += 1
        track.state = case.state
        getattr(self, f"_after_{plan.event}")(track, plan)

    # ------------------------------------------------------------ presentations

    def _draw(self, slot: Slot) -> int | None:
        rates = self.rates
        if self.rng.random() < rates.multi:
            # someone already presented elsewhere, to another structure
            busy = [c for c, cases in self.open_cases_of.items() if len(cases) == 1 and c not in self.employed]
            if busy:
                cand = busy[self.rng.randrange(len(busy))]
                if self.tracks[self.open_cases_of[cand][0]].structure != slot.structure:
                    return cand
        return self.pool.draw(self.rng, slot.departement, rates)

    def _present(self, s: Session, plan: Plan) -> None:
        slot = self.slots[plan.slot]
        cand = self._draw(slot)
        if cand is None:
            self.stats.refused_events["no_candidate_free"] += 1
            self._plan_present(plan.slot, self.rates.retry_days)
            return
        try:
            with s.begin_nested():
                case = service.present(
                    s, slot.structure, cand, actor="admin", at=plan.at, policy=self.policy, flow_run_id=self.flow_run_id
                )
        except ConumError as exc:
            self.stats.refused[exc.rule] += 1
            self.stats.refused_events["present"] += 1
            self._plan_present(plan.slot, self.rates.retry_days)
            return
        self.stats.actions["present"] += 1
        track = Track(case.id or 0, plan.slot, slot.structure, cand)
        self.tracks[track.case] = track
        self.open_tracks += 1
        slot.status = "recruiting"
        self.pool.discard(cand)
        self.open_cases_of.setdefault(cand, []).append(track.case)
        self._answer(track)

    def _answer(self, track: Track) -> None:
        """Decide how the structure, the candidate and the préfet react to a presentation."""
        r, rates, who = self.rng, self.rates, f"structure:{track.structure}"
        roll = r.random()
        if roll < rates.decline:
            self._plan(track, _between(r, rates.answer_days), "decline", who, {"reason": r.choice(_DECLINE_REASONS)})
        elif roll < rates.decline + rates.silent:
            pass  # the sweep reminds, then times out
        elif roll < rates.decline + rates.silent + rates.too_late:
            self._plan(track, _between(r, rates.too_late_days), "select", who, blind=True)
        elif roll < rates.decline + rates.silent + rates.too_late + rates.late_answer:
            self._plan(track, _between(r, rates.late_answer_days), "select", who)
        else:
            self._plan(track, _between(r, rates.answer_days), "select", who)
        if r.random() < rates.withdraw:
            self._plan(
                track,
                _between(r, rates.withdraw_days),
                "withdraw",
                f"candidate:{track.candidate}",
                {"reason": r.choice(_WITHDRAW_REASONS)},
                blind=True,
            )
        if r.random() < rates.cancel:
            dep = self.slots[track.slot].departement
            self._plan(
                track, _between(r, rates.cancel_days), "cancel", f"prefet:{dep}", {"reason": r.choice(_CANCEL_REASONS)}
            )

    # ------------------------------------------------------------ after each action

    def _after_select(self, track: Track, plan: Plan) -> None:
        r, rates = self.rng, self.rates
        track.selected_on = self.today
        contact = _between(r, rates.contact_days)
        self._plan(track, contact, "contact_training_org", f"structure:{track.structure}", {"org": r.choice(self.orgs)})

    def _after_contact_training_org(self, track: Track, plan: Plan) -> None:
        r, rates = self.rng, self.rates
        roll = r.random()
        if roll < rates.stall:
            return  # the sweep escalates, then times out at day 45
        elapsed = (self.today - (track.selected_on or self.today)).days
        if roll < rates.stall + rates.very_late_sign:
            days = max(1, _between(r, rates.very_late_sign_days) - elapsed)
        elif roll < rates.stall + rates.very_late_sign + rates.late_sign:
            days = max(1, _between(r, rates.late_sign_days) - elapsed)
        else:
            days = _between(r, rates.sign_days)
        sign_day = self.today + timedelta(days=days)
        self._plan(track, days, "sign_contract", f"structure:{track.structure}", self._contract(sign_day))

    def _contract(self, sign_day: date, below_smic: bool | None = None) -> dict[str, str]:
        r, rates = self.rng, self.rates
        kind = _weighted(r, rates.contract_types)
        start = sign_day + timedelta(days=_between(r, rates.contract_start_days))
        data = {"type": kind, "start": start.isoformat()}
        lengths = dict(rates.contract_months).get(kind)
        if lengths:
            data["end"] = (add_months(start, _weighted(r, lengths)) - timedelta(days=1)).isoformat()
        smic = self.policy.smic_on(start)
        floor = smic.monthly_cents if smic else 0
        if below_smic is None:
            below_smic = r.random() < rates.below_smic
        if below_smic:
            salary = floor - r.randint(1_00, 50_00)
        elif r.random() < rates.at_smic:
            salary = floor
        else:
            salary = floor + int(floor * r.uniform(0, rates.salary_premium))
        data["salary"] = f"{salary // 100}.{salary % 100:02d}"
        return data

    def _after_sign_contract(self, track: Track, plan: Plan) -> None:
        r, rates = self.rng, self.rates
        track.phase = "contract"
        self.slots[track.slot].status = "filled"
        cand = track.candidate
        self.employed.add(cand)
        self.pool.discard(cand)
        # the service withdrew the candidate's other cases before their contract
        for other in list(self.open_cases_of.get(cand, [])):
            if other != track.case:
                self._closed(other, "withdrawn", back_to_pool=False)
        self._forget_open(cand, track.case)
        start = date.fromisoformat(plan.data["start"])
        end = date.fromisoformat(plan.data["end"]) if "end" in plan.data else None
        track.contract_start, track.contract_end = start, end
        late = r.random() < rates.late_training
        delay = _between(r, rates.late_training_days if late else rates.training_days)
        day = start + timedelta(days=delay)
        self._plan_on(track, day, "start_training", date=day.isoformat())
        if r.random() < rates.rupture:
            self._plan_rupture(track, plan.data["type"], start, end)

    def _plan_on(self, track: Track, day: date, event: str, **data: Any) -> None:
        actor = f"structure:{track.structure}"
        self._push(Plan(self._when(max(day, self.today + timedelta(days=1))), "fire", case=track.case, event=event,
                        actor=actor, data=data))  # fmt: skip

    def _plan_rupture(self, track: Track, kind: str, start: date, end: date | None) -> None:
        r, rates = self.rng, self.rates
        months = funded_months(self.policy, kind, start, end)
        limit = add_months(start, months) - timedelta(days=8)  # before the last tranche is due
        if end is not None:
            limit = min(limit, end)
        first = start + timedelta(days=20)
        if limit <= first:
            return
        reasons = [(k, w) for k, w in rates.rupture_reasons if kind != "CDI" or k != "non_reconduction_cdd"]
        reason = _weighted(r, reasons)
        span = (limit - first).days
        if reason in ("non_reconduction_cdd", "fin_de_subventionnement"):
            offset = span - r.randint(0, min(span, 120))  # towards the end of the contract or of the funding
        else:
            offset = r.randint(0, span)
        when = first + timedelta(days=offset)
        track.rupture = (reason, when)
        declared = when + timedelta(days=_between(r, rates.rupture_declared_days))
        self._push(
            Plan(
                self._when(max(declared, self.today + timedelta(days=1))),
                "fire",
                case=track.case,
                event="break_contract",
                actor=f"structure:{track.structure}",
                data={"reason": reason, "date": when.isoformat()},
            )
        )

    def _after_start_training(self, track: Track, plan: Plan) -> None:
        r, rates = self.rng, self.rates
        started = date.fromisoformat(plan.data["date"])
        late = r.random() < rates.late_completion
        delay = _between(r, rates.late_completion_days if late else rates.completion_days)
        day = add_months(started, self.policy.training_months) + timedelta(days=delay)
        self._plan_on(track, day, "complete_training", date=day.isoformat())

    def _after_complete_training(self, track: Track, plan: Plan) -> None:
        pass  # in post: the payment run pays the tranches as they fall due

    def _after_break_contract(self, track: Track, plan: Plan) -> None:
        r, rates = self.rng, self.rates
        self.employed.discard(track.candidate)
        self._closed(track.case, "broken", back_to_pool=r.random() >= rates.leave_after_rupture)
        if r.random() < rates.replace:
            self._plan_present(track.slot, _between(r, rates.replace_days))
        else:
            self.slots[track.slot].status = "vacant"

    def _after_decline(self, track: Track, plan: Plan) -> None:
        self._closed(track.case, "declined", back_to_pool=True)

    def _after_withdraw(self, track: Track, plan: Plan) -> None:
        self._closed(track.case, "withdrawn", back_to_pool=self.rng.random() >= self.rates.leave_after_withdraw)

    def _after_cancel(self, track: Track, plan: Plan) -> None:
        self._closed(track.case, "cancelled", back_to_pool=True)

    def _refused(self, track: Track, plan: Plan, exc: ConumError) -> None:
        if plan.event == "sign_contract" and exc.rule == "smic" and track.phase == "pre":
            # the structure corrects the salary and signs the next day
            data = self._contract(self.today + timedelta(days=1), below_smic=False)
            self._plan(track, 1, "sign_contract", plan.actor, data)

    # ------------------------------------------------------------ bookkeeping

    def _forget_open(self, cand: int, case: int) -> None:
        cases = self.open_cases_of.get(cand)
        if cases and case in cases:
            cases.remove(case)
            if not cases:
                del self.open_cases_of[cand]

    def _closed(self, case_id: int, state: str, back_to_pool: bool) -> None:
        """A case ended: free its post (unless filled or done) and maybe return its candidate to the pool."""
        track = self.tracks.get(case_id)
        if track is None or track.phase == "closed":
            return
        was_pre = track.phase == "pre"
        track.phase, track.state = "closed", state
        self.open_tracks -= 1
        cand = track.candidate
        self._forget_open(cand, case_id)
        if was_pre and self.slots[track.slot].status == "recruiting":
            self._plan_present(track.slot, _between(self.rng, self.rates.present_days))
        if back_to_pool and cand not in self.employed and cand not in self.open_cases_of and cand not in self.gone:
            self.pool.add(cand, self.departement_of[cand])
        elif not back_to_pool and cand not in self.employed:
            self.gone.add(cand)


_DECLINE_REASONS = (
    "profil trop éloigné du poste",
    "candidat trop éloigné géographiquement",
    "expérience de médiation insuffisante",
    "poste finalement pourvu en interne",
    "prétentions salariales",
)
_WITHDRAW_REASONS = ("a trouvé un autre emploi", "raisons personnelles", "déménagement", "reprise d'études")
_CANCEL_REASONS = ("poste réattribué par le comité de pilotage", "structure hors des critères du programme")


# ---------------------------------------------------------------- preparing a run


def programme_rows(engine: Engine) -> dict[str, int]:
    """Count what the database holds already (cases, structures, candidates)."""
    with Session(engine) as s:
        return {
            "cases": int(s.exec(select(func.count()).select_from(Case)).one()),
            "structures": int(s.exec(select(func.count()).select_from(Structure)).one()),
            "candidates": int(s.exec(select(func.count()).select_from(Candidate)).one()),
        }


def check_empty(engine: Engine, url_shown: str) -> None:
    """Refuse a database that holds a programme already: two programmes must not mix."""
    rows = programme_rows(engine)
    if any(rows.values()):
        held = ", ".join(f"{n:,} {what}" for what, n in rows.items() if n)
        raise BadInput(
            f"the database {url_shown} already holds a programme ({held}): a simulation needs a new or empty "
            "database; give another --db or delete that database first"
        )


def check_out_dir(out_dir: Path) -> None:
    """Refuse an output folder whose mail or payment folder holds files of an earlier run."""
    for sub in ("mail", "payments"):
        folder = out_dir / sub
        if folder.is_dir() and any(folder.iterdir()):
            raise BadInput(
                f"{folder} already holds files of an earlier run: delete it or write the report elsewhere "
                "(--report another/folder/report.html)"
            )
        if folder.exists() and not folder.is_dir():
            raise BadInput(f"{folder} exists and is not a folder: move it away or write the report elsewhere")


def _sqlite_folder(database_url: str) -> Path | None:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(str(url.database)).resolve().parent
    return None


def default_database(report_path: Path | str) -> str:
    """The simulation's database when none is given: a SQLite file next to the report."""
    return f"sqlite:///{Path(report_path).resolve().parent / 'simulation.db'}"


def preflight(database_url: str, report_path: Path | str) -> None:
    """Refuse, writing nothing, a database or an output folder an earlier run has used."""
    try:
        url = make_url(database_url)
    except Exception:
        raise BadInput(
            f"'{database_url}' is not a database URL: use e.g. sqlite:///run/sim/simulation.db or "
            "postgresql+psycopg://user@host:5432/db"
        ) from None
    out = Path(report_path).resolve()
    if out.is_dir():
        raise BadInput(f"--report {report_path} is a folder: give the path of an HTML file, e.g. {out / 'report.html'}")
    check_out_dir(out.parent)
    folder = _sqlite_folder(database_url)
    if folder is not None and not Path(str(url.database)).exists():
        return  # a new SQLite file: nothing to check, and connecting would create it
    engine = get_engine(database_url)
    if has_schema(engine):
        check_empty(engine, url.render_as_string(hide_password=True))


def prepare(
    database_url: str,
    policy: Policy,
    config: Config,
    report_path: Path | str,
    *,
    deliver: Delivery = "background",
) -> Simulation:
    """Check the database and the output folder are free, create the schema, generate the programme.

    Nothing is written when a check refuses: a database holding a programme, or mail left by an
    earlier run, raises ``BadInput`` first.
    """
    preflight(database_url, report_path)
    out = Path(report_path).resolve()
    folder = _sqlite_folder(database_url)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    engine = get_engine(database_url)
    migrate(database_url)
    check_empty(engine, make_url(database_url).render_as_string(hide_password=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    sim = Simulation(engine, policy, config, out_dir=out.parent, deliver=deliver)
    try:
        sim.setup()
    except BaseException:
        sim.close()
        raise
    return sim


@dataclass
class Outcome:
    """A finished simulation: its figures, the reconciliation and where the report is."""

    figures: Any  # states.report.Figures
    reconciliation: Any  # states.report.Reconciliation
    report: Path
    database_url: str

    @property
    def ok(self) -> bool:
        return bool(self.reconciliation.ok)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the same for the same seed, except the paths."""
        from states.report import headline

        f = self.figures
        return {
            "ok": self.ok,
            "report": str(self.report),
            "database": make_url(self.database_url).render_as_string(hide_password=True),
            "headline": [{"key": h.key, "label": h.label, "value": h.value} for h in headline(f)],
            "totals": {
                "posts": f.posts,
                "structures": f.structures,
                "candidates": f.candidates,
                "cases": f.cases,
                "by_state": f.by_state,
                "committed_cents": f.committed_cents,
                "paid_cents": f.paid_cents,
                "cancelled_cents": f.cancelled_cents,
                "scheduled_cents": f.scheduled_cents,
                "recovery_cents": f.recovery_cents,
                "recoveries": f.recoveries,
                "mails": f.mails,
                "payment_orders": f.payment_orders,
            },
            "run": f.run,
            "reconciliation": self.reconciliation.to_dict(),
        }


def parameters(config: Config) -> list[tuple[str, str]]:
    """The parameters of a run, as the report lists them."""
    return [("postes", str(config.posts)), ("graine", str(config.seed)), ("début", config.start.isoformat())]


def conclude(sim: Simulation, report_path: Path | str, *, generated_at: datetime | None = None) -> Outcome:
    """Read the figures, reconcile the books and write the report of a finished simulation."""
    from states import report

    stats = sim.finish()
    figures = report.collect(sim.engine, stats.to_dict(), mail_dir=sim.mail_dir, payment_dir=sim.payment_dir)
    rec = report.reconcile(sim.engine, sim.policy)
    page = report.render(figures, rec, report_path, generated_at=generated_at, parameters=parameters(sim.config))
    return Outcome(figures, rec, page, str(sim.engine.url))


def simulate(
    database_url: str,
    policy: Policy,
    config: Config,
    report_path: Path | str,
    *,
    on_month: Callable[[MonthReport], None] | None = None,
    generated_at: datetime | None = None,
    deliver: Delivery = "background",
) -> Outcome:
    """The whole simulation without Prefect: prepare, run every month, conclude."""
    sim = prepare(database_url, policy, config, report_path, deliver=deliver)
    try:
        sim.run(on_month)
        return conclude(sim, report_path, generated_at=generated_at)
    finally:
        sim.close()
