"""Adding structures, candidates and training organisations (an admin's job)."""

from __future__ import annotations

import re
from datetime import datetime

from sqlmodel import Session

from states.errors import BadInput, NotAllowed
from states.geo import DEPARTEMENTS
from states.models import Candidate, Structure, TrainingOrg
from states.rules import parse_actor

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _admin(actor: str, what: str) -> None:
    if parse_actor(actor) != "admin":
        raise NotAllowed(f"{actor} may not add {what} (rule: who acts): only admin may")


def check_departement(code: str) -> str:
    code = code.strip().upper()
    if code not in DEPARTEMENTS:
        raise BadInput(f"'{code}' is not a département code: use e.g. 01, 33, 2A, 974 or 987")
    return code


def _name(name: str) -> str:
    if not name.strip():
        raise BadInput("the name is empty: give a name")
    return name.strip()


def check_email(email: str | None, required: bool = False) -> str | None:
    if email is None and not required:
        return None
    if email is None or not _EMAIL.match(email.strip()):
        raise BadInput(f"'{email}' is not an e-mail address: write it as name@domain.fr")
    return email.strip()


def add_structure(
    session: Session,
    *,
    name: str,
    departement: str,
    posts: int,
    kind: str = "public",
    email: str | None = None,
    siret: str | None = None,
    actor: str = "admin",
    at: datetime | None = None,
) -> int:
    """Add a structure whose posts were validated outside Conum: its history records it as imported.

    A SIRET, when given, must be valid and not already registered.
    """
    from states.applications.rules import check_siret
    from states.applications.service import find_by_siret, import_structure

    _admin(actor, "a structure")
    if posts < 1:
        raise BadInput(f"posts must be at least 1, got {posts}: give the number of posts attributed")
    if kind not in ("public", "private"):
        raise BadInput(f"kind '{kind}' is unknown: use public (collectivité) or private (association)")
    if siret is not None:
        siret = check_siret(siret)
        if find_by_siret(session, siret) is not None:
            raise BadInput(f"SIRET {siret} is already registered (rule: siret_unique): the structure exists already")
    row = Structure(
        name=_name(name), departement=check_departement(departement), posts=posts, kind=kind, email=check_email(email)
    )
    session.add(row)
    session.flush()
    import_structure(session, row, actor=actor, at=at, siret=siret)
    return row.id or 0


def add_candidate(
    session: Session,
    *,
    name: str,
    email: str,
    departement: str | None = None,
    consent: bool = False,
    actor: str = "admin",
) -> int:
    _admin(actor, "a candidate")
    row = Candidate(
        name=_name(name),
        email=check_email(email, required=True) or "",
        departement=check_departement(departement) if departement else None,
        consent=consent,
    )
    session.add(row)
    session.flush()
    return row.id or 0


def add_training_org(session: Session, *, name: str, email: str | None = None, actor: str = "admin") -> int:
    _admin(actor, "a training organisation")
    row = TrainingOrg(name=_name(name), email=check_email(email))
    session.add(row)
    session.flush()
    return row.id or 0
