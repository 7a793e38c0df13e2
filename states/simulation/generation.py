"""The generated programme: structures, candidates and training organisations, from one seed.

The programme is shaped like the real one: employers in every département
(overseas included) once it is large enough, each applying for one to three
posts (together a little more than the national envelope, ``config.posts``:
the committee cannot validate them all) under a SIRET of its own, a pool
of candidates larger than the posts, a few dozen approved training
organisations. Names are plausible, not real. The same configuration gives
the same programme: the only randomness is a ``random.Random`` seeded here.
"""

from __future__ import annotations

import math
import random
import unicodedata
from dataclasses import dataclass

from states.applications.rules import with_key
from states.geo import DEPARTEMENTS, region_of
from states.simulation.config import Config, Employer
from states.simulation.rates import weighted


@dataclass(frozen=True)
class StructureSpec:
    name: str
    employer: str
    kind: str
    departement: str
    posts: int  # requested
    email: str
    opens_after: int  # the day it applies, after the start
    siret: str


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


def requested_posts(config: Config) -> int:
    """Return the posts the structures request together: the envelope and the extra requests beyond it."""
    return config.posts + math.ceil(config.posts * config.rates.extra_requests)


def siret(n: int) -> str:
    """Return the ``n``-th structure's SIRET: a SIREN of its own (never La Poste's), head office, a valid key."""
    return with_key(f"{200000000 + n:09d}0001")


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
    total, target = 0, requested_posts(config)
    while total < target:
        dep = cover.pop() if cover else weighted(rng, by_population)
        employer: Employer = weighted(rng, employers)
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
        posts = min(weighted(rng, list(zip((1, 2, 3), employer.posts, strict=True))), target - total)
        opens = int(rng.triangular(0, config.rates.opening_days, 0))
        email = f"numerique@{_slug(name)[:40].strip('-')}-{dep.lower()}-{len(structures) + 1}.fr"
        n = len(structures) + 1
        structures.append(StructureSpec(name, employer.key, employer.kind, dep, posts, email, opens, siret(n)))
        total += posts
    count = max(1, round(config.posts * config.candidates_per_post))
    candidates = []
    for i in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        dep = weighted(rng, by_population)
        candidates.append(CandidateSpec(f"{first} {last}", f"{_slug(first)}.{_slug(last)}.{i + 1}@exemple.fr", dep))
    regions = sorted({region_of(d.code) for d in deps})
    pairs = [(t, r) for t in _TRAINERS for r in regions]
    orgs = rng.sample(pairs, min(config.training_orgs, len(pairs)))
    training = tuple((f"{t} {r}", f"formation-cnfs@{_slug(t)}-{_slug(r)}.fr") for t, r in orgs)
    return Programme(tuple(structures), tuple(candidates), training)
