"""Commands that set up the registry: the schema, structures, candidates and training organisations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    warn,
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
    siret: Annotated[str | None, typer.Option(help="SIRET of the establishment (14 digits), if known.")] = None,
    db: Db = None,
    as_json: Json = False,
    at: At = None,
    actor: Actor = "admin",
) -> None:
    """Add a host structure whose posts were validated outside Conum (recorded as imported in its history)."""
    from states.registry import add_structure

    when = instant(at)
    with write(db) as s:
        sid = add_structure(
            s,
            name=name,
            departement=departement,
            posts=posts,
            kind=kind,
            email=email,
            siret=siret,
            actor=actor,
            at=when,
        )
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


@app.command("import")
@guarded
def import_(
    kind: Annotated[str, typer.Argument(help="What the file lists: structures or candidates.")],
    file: Annotated[Path, typer.Argument(help="CSV export of the national platform (see docs/import.md).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the whole file and report, without writing anything.")
    ] = False,
    db: Db = None,
    as_json: Json = False,
    at: At = None,
    actor: Actor = "admin",
) -> None:
    """Load structures or candidates from a CSV export: all rows or none, every bad row reported.

    French headers, `;` or `,` between fields, UTF-8 with or without BOM. A bad row refuses the whole
    file (exit 2, nothing written); with --dry-run the report lists every problem and exits 2 if any.
    """
    from states.imports import KINDS, ImportRefused, load

    if kind not in KINDS:
        raise errors.BadInput(f"cannot import {kind!r}: use `conum import structures FILE` or `candidates FILE`")
    try:
        content = file.read_bytes()
    except OSError as exc:
        raise errors.NotFound(f"cannot read {file}: {exc.strerror}; give the path of the CSV file") from None
    when = instant(at)
    with write(db) as s:
        report = load(s, content, kind, dry_run=dry_run, actor=actor, at=when)
    if dry_run:
        emit(report.as_dict(), as_json, lambda: _print_report(report))
        if not report.ok:
            warn(ImportRefused(report).args[0], 2)
        return
    emit(report.as_dict(), as_json, lambda: out.print(f"{len(report.created)} {kind} imported: {report.created}"))


def _print_report(report: Any) -> None:
    out.print(f"{report.rows} data row(s) read, separator {report.delimiter!r}, {len(report.problems)} problem(s)")
    if report.ignored_columns:
        out.print(f"ignored columns: {', '.join(report.ignored_columns)}")
    for p in report.problems:
        out.print(f"line {p.line}: {p.en}" if p.line else p.en)
    if report.ok:
        out.print(f"the file is correct: {len(report.values)} {report.kind} would be added (run without --dry-run)")
