"""Commands that set up the registry: the schema, structures, candidates and training organisations."""

from __future__ import annotations

from typing import Annotated

import typer

from states import errors
from states.cli.app import (
    Actor,
    At,
    Db,
    Json,
    app,
    candidate_app,
    emit,
    engine,
    guarded,
    instant,
    org_app,
    out,
    structure_app,
    url,
    write,
)


@app.command()
@guarded
def init(db: Db = None, as_json: Json = False, at: At = None, actor: Actor = "admin") -> None:
    """Create or upgrade the schema."""
    from states.db import migrate
    from states.service import parse_actor

    instant(at)
    if parse_actor(actor) not in ("admin", "system"):
        raise errors.NotAllowed(f"{actor} may not change the schema (rule: who acts): only admin or system may")
    engine(db, create=True)
    migrate(url(db))
    emit({"ok": True}, as_json, lambda: out.print("schema is up to date"))


@structure_app.command("add")
@guarded
def structure_add(
    name: Annotated[str, typer.Option(help="Name of the structure.")],
    departement: Annotated[str, typer.Option(help="Département code, e.g. 33, 2A, 974.")],
    posts: Annotated[int, typer.Option(help="Posts attributed.")],
    kind: Annotated[str, typer.Option(help="public (collectivité) or private (association).")] = "public",
    email: Annotated[str | None, typer.Option(help="Contact address for notifications.")] = None,
    db: Db = None,
    as_json: Json = False,
    at: At = None,
    actor: Actor = "admin",
) -> None:
    """Add a host structure."""
    from states.registry import add_structure

    instant(at)
    with write(db) as s:
        sid = add_structure(s, name=name, departement=departement, posts=posts, kind=kind, email=email, actor=actor)
    emit({"id": sid}, as_json, lambda: out.print(f"structure {sid} added"))


@candidate_app.command("add")
@guarded
def candidate_add(
    name: Annotated[str, typer.Option(help="Full name.")],
    email: Annotated[str, typer.Option(help="E-mail address.")],
    departement: Annotated[str | None, typer.Option(help="Département of residence.")] = None,
    consent: Annotated[
        bool, typer.Option("--consent", help="The candidate agrees to be kept in the pool for longer.")
    ] = False,
    db: Db = None,
    as_json: Json = False,
    at: At = None,
    actor: Actor = "admin",
) -> None:
    """Add a candidate to the national pool (job-related data only)."""
    from states.registry import add_candidate

    instant(at)
    with write(db) as s:
        cid = add_candidate(s, name=name, email=email, departement=departement, consent=consent, actor=actor)
    emit({"id": cid}, as_json, lambda: out.print(f"candidate {cid} added"))


@org_app.command("add")
@guarded
def training_org_add(
    name: Annotated[str, typer.Option(help="Name of the approved training organisation.")],
    email: Annotated[str | None, typer.Option(help="Contact address.")] = None,
    db: Db = None,
    as_json: Json = False,
    at: At = None,
    actor: Actor = "admin",
) -> None:
    """Add an approved training organisation."""
    from states.registry import add_training_org

    instant(at)
    with write(db) as s:
        oid = add_training_org(s, name=name, email=email, actor=actor)
    emit({"id": oid}, as_json, lambda: out.print(f"training organisation {oid} added"))


@candidate_app.command("export")
@guarded
def candidate_export(
    candidate: Annotated[int, typer.Argument(help="Candidate id.")],
    db: Db = None,
    as_json: Json = False,
    at: At = None,
) -> None:
    """Give a candidate everything the programme holds about them (their right of access), as JSON."""
    from states.privacy import export

    instant(at)
    emit(export(engine(db), candidate), True)
