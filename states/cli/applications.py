"""Commands on structures' applications: submit, fire an event, show, list, and the table.

The same options, JSON shapes, exit codes and refusals as the commands on cases.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from states import errors
from states.cli.app import Actor, At, Db, Json, app, emit, engine, guarded, instant, out, policy, write
from states.cli.cases import Sets, _parse_sets, print_events, print_history

application_app = typer.Typer(help="Structures' applications for posts.", no_args_is_help=True)
app.add_typer(application_app, name="application")


def _show(view: dict[str, Any], as_json: bool) -> None:
    emit(view, as_json, lambda: print_application(view))


def _view(s: Any, application: Any) -> dict[str, Any]:
    from states.applications.service import load
    from states.applications.views import application_view

    return application_view(s, *load(s, application.id))


@application_app.command("submit")
@guarded
def submit(
    name: Annotated[str, typer.Option("--name", help="Name of the structure.")],
    departement: Annotated[str, typer.Option("--departement", help="Département code, e.g. 33, 2A, 974.")],
    kind: Annotated[str, typer.Option("--kind", help="public (collectivité) or private (association).")],
    posts: Annotated[int, typer.Option("--posts", help="Posts requested.")],
    siret: Annotated[str, typer.Option("--siret", help="SIRET of the establishment (14 digits).")],
    email: Annotated[str | None, typer.Option("--email", help="Contact address for notifications.")] = None,
    duration: Annotated[int, typer.Option("--duration", help="Contract duration wished, in months.")] = 24,
    db: Db = None,
    as_json: Json = False,
    at: At = None,
    actor: Actor = "admin",
) -> None:
    """A structure applies for posts (a SIRET already known gives its existing application)."""
    from states.applications.service import submit as submit_application
    from states.registry import check_email

    when = instant(at)
    data = {
        "name": name,
        "departement": departement,
        "kind": kind,
        "posts": posts,
        "siret": siret,
        "duration": duration,
        "email": check_email(email),
    }
    with write(db) as s:
        found, new = submit_application(s, data, actor=actor, at=when, policy=policy())
        view = {**_view(s, found), "existing": not new}
    _show(view, as_json)


@application_app.command("advance")
@guarded
def advance(
    application: Annotated[int, typer.Argument(help="Application id.")],
    event: Annotated[str, typer.Argument(help="Event to fire (see `conum application events`).")],
    set_: Sets = None,
    db: Db = None,
    as_json: Json = False,
    at: At = None,
    actor: Actor = "admin",
) -> None:
    """Fire an event on an application."""
    from states.applications.service import fire

    when = instant(at)
    data = _parse_sets(set_ or [])
    with write(db) as s:
        fired = fire(s, application, event, actor=actor, at=when, data=data, policy=policy())
        view = _view(s, fired)
    _show(view, as_json)


@application_app.command("show")
@guarded
def show(
    application: Annotated[int, typer.Argument(help="Application id.")],
    db: Db = None,
    as_json: Json = False,
    at: At = None,
) -> None:
    """Show an application: state, posts, committee, convention and history (and whether it is intact)."""
    from states.applications.views import get_application

    instant(at)
    _show(get_application(engine(db), application), as_json)


@application_app.command("list")
@guarded
def list_(
    state: Annotated[str | None, typer.Option("--state", help="Only applications in this state.")] = None,
    departement: Annotated[str | None, typer.Option("--departement", help="Only this département.")] = None,
    db: Db = None,
    as_json: Json = False,
    at: At = None,
) -> None:
    """List applications."""
    from states.applications.table import AppState
    from states.applications.views import list_applications
    from states.db import read_session

    _check_state(state, AppState)
    if departement is not None:
        from states.registry import check_departement

        departement = check_departement(departement)
    instant(at)
    with read_session(engine(db)) as s:
        found = list_applications(s, state=state, departement=departement)
    emit({"applications": found}, as_json, lambda: print_applications(found))


@application_app.command("events")
@guarded
def events(
    state: Annotated[str | None, typer.Argument(help="Only the events allowed from this state.")] = None,
    db: Db = None,
    as_json: Json = False,
    at: At = None,
) -> None:
    """List the applications' table, or the events allowed from STATE, with guards and data fields."""
    from states.applications.table import AppState, table_rows

    instant(at)
    _check_state(state, AppState)
    print_events(table_rows(state), as_json)


def _check_state(state: str | None, states: Any) -> None:
    if state is not None and state not in {s.value for s in states}:
        raise errors.BadInput(f"unknown state '{state}': use one of {', '.join(s.value for s in states)}")


def print_application(view: dict[str, Any]) -> None:
    out.print(
        Text.assemble(
            (f"Application {view['id']}", "bold"),
            f" — {view['name']} — {view['label']} (",
            (view["state"], "cyan"),
            f"), version {view['version']}",
        )
    )
    out.print(
        f"structure {view['structure_id']}, département {view['departement']}, SIRET {view['siret'] or '–'}, "
        f"posts requested {view['posts_requested']}, validated {view['posts_validated']}"
    )
    out.print(f"deadline: {view['deadline_at'] or '–'}    next sweep action: {view['due_at'] or '–'}")
    if view["convention_start"]:
        out.print(f"convention: {view['convention_start']} to {view['convention_end']}")
    print_history(view)


def print_applications(found: list[dict[str, Any]]) -> None:
    t = Table("application", "state", "structure", "name", "département", "requested", "validated", "deadline")
    for a in found:
        t.add_row(
            str(a["id"]),
            a["state"],
            str(a["structure_id"]),
            a["name"],
            a["departement"],
            str(a["posts_requested"]),
            str(a["posts_validated"]),
            a["deadline_at"] or "",
        )
    out.print(t)
    out.print(f"{len(found)} application(s)")
