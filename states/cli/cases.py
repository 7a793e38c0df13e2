"""Commands on cases: present a candidate, fire an event, show, list, and the lifecycle table."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from states import errors
from states.cli.app import (
    Actor,
    At,
    Db,
    Json,
    app,
    emit,
    engine,
    guarded,
    instant,
    out,
    policy,
    write,
)

Sets = Annotated[list[str] | None, typer.Option("--set", help="Event data KEY=VALUE (repeatable).")]


def _show_case(view: dict[str, Any], as_json: bool) -> None:
    emit(view, as_json, lambda: print_case(view))


@app.command()
@guarded
def present(
    structure: Annotated[int, typer.Option("--structure", help="Structure id.")],
    candidate: Annotated[int, typer.Option("--candidate", help="Candidate id.")],
    db: Db = None,
    as_json: Json = False,
    at: At = None,
    actor: Actor = "admin",
) -> None:
    """Present a candidate to a structure: opens a case."""
    from states import service
    from states.views import case_view

    when = instant(at)
    with write(db) as s:
        case = service.present(s, structure, candidate, actor=actor, at=when, policy=policy())
        view = case_view(s, case)
    _show_case(view, as_json)


def _parse_sets(values: list[str]) -> dict[str, str]:
    data: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise errors.BadInput(f"--set '{item}' is not KEY=VALUE: write e.g. --set reason=\"...\"")
        if key.strip() in data:
            raise errors.BadInput(f"--set {key.strip()} is given twice: give each key once")
        data[key.strip()] = value
    return data


@app.command()
@guarded
def advance(
    case: Annotated[int, typer.Argument(help="Case id.")],
    event: Annotated[str, typer.Argument(help="Event to fire (see `conum events`).")],
    set_: Sets = None,
    db: Db = None,
    as_json: Json = False,
    at: At = None,
    actor: Actor = "admin",
) -> None:
    """Fire an event on a case."""
    from states import service
    from states.views import case_view

    when = instant(at)
    data = _parse_sets(set_ or [])
    with write(db) as s:
        fired = service.fire(s, case, event, actor=actor, at=when, data=data, policy=policy())
        view = case_view(s, fired)
    _show_case(view, as_json)


@app.command()
@guarded
def show(
    case: Annotated[int, typer.Argument(help="Case id.")],
    db: Db = None,
    as_json: Json = False,
    at: At = None,
) -> None:
    """Show a case: state, deadlines, money, tranches and history (and whether its history is intact)."""
    from states.audit import flag_broken, verify
    from states.views import get_case

    instant(at)
    found = engine(db)
    # the view stays as `advance` prints it unless the history was rewritten
    view = flag_broken(get_case(found, case), verify(found, case))
    _show_case(view, as_json)


@app.command("list")
@guarded
def list_(
    state: Annotated[str | None, typer.Option("--state", help="Only cases in this state.")] = None,
    departement: Annotated[str | None, typer.Option("--departement", help="Only this département.")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only open cases past their deadline.")] = False,
    db: Db = None,
    as_json: Json = False,
    at: At = None,
) -> None:
    """List cases."""
    from states.db import read_session
    from states.lifecycle import State
    from states.views import list_cases

    if state is not None and state not in {s.value for s in State}:
        raise errors.BadInput(f"unknown state '{state}': use one of {', '.join(s.value for s in State)}")
    if departement is not None:
        from states.registry import check_departement

        departement = check_departement(departement)
    when = instant(at)
    with read_session(engine(db)) as s:
        cases = list_cases(s, at=when, state=state, departement=departement, overdue=overdue)
    emit({"cases": cases}, as_json, lambda: print_cases(cases))


@app.command()
@guarded
def events(
    state: Annotated[str | None, typer.Argument(help="Only the events allowed from this state.")] = None,
    db: Db = None,
    as_json: Json = False,
    at: At = None,
) -> None:
    """List the lifecycle table, or the events allowed from STATE, with each event's guards, data fields and who is
    told (recipient: mail template, and when; docs/notifications.md)."""
    from states.lifecycle import State
    from states.machine import table_rows
    from states.notifications import told

    instant(at)

    if state is not None and state not in {s.value for s in State}:
        raise errors.BadInput(f"unknown state '{state}': use one of {', '.join(s.value for s in State)}")
    print_events([{**r, "told": told(r["event"])} for r in table_rows(state)], as_json)


def print_events(rows: list[dict[str, Any]], as_json: bool) -> None:
    """Print a lifecycle table's rows (``conum events``, ``conum application events``)."""

    def human() -> None:
        told = any("told" in r for r in rows)
        table = Table(
            "event", "from", "to", "who", "data (--set KEY=…, * required)", "guards", *(["told"] if told else [])
        )
        for r in rows:
            fields = ", ".join(f"{f['name']}{'*' if f['required'] else ''}: {f['type']}" for f in r["fields"])
            cells = [r["event"], r["from"] or "", r["to"], ", ".join(r["who"]), fields, ", ".join(r["guards"])]
            table.add_row(*cells, *(["\n".join(r.get("told", []))] if told else []))
        out.print(table)

    emit({"events": rows}, as_json, human)


# ---------------------------------------------------------------- human views


def _euros(cents: int | None) -> str:
    return "–" if cents is None else f"{cents / 100:,.2f} €".replace(",", " ")


def print_case(view: dict[str, Any]) -> None:
    out.print(
        Text.assemble(
            (f"Case {view['id']}", "bold"),
            f" — {view['label']} (",
            (view["state"], "cyan"),
            f"), version {view['version']}",
        )
    )
    out.print(
        f"structure {view['structure_id']}, candidate {view['candidate_id']}, "
        f"escalation level {view['escalation_level']}"
    )
    out.print(f"deadline: {view['deadline_at'] or '–'}    next sweep action: {view['due_at'] or '–'}")
    out.print(f"subsidy: {_euros(view['subsidy_cents'])}    to recover: {_euros(view['recovery_cents'])}")
    if view["tranches"]:
        t = Table("tranche", "amount", "due on", "status", "paid at")
        for tr in view["tranches"]:
            t.add_row(
                str(tr["number"]),
                _euros(tr["amount_cents"]),
                tr["due_on"] or "on taking post",
                tr["status"],
                tr["paid_at"] or "",
            )
        out.print(t)
    print_history(view)


def print_history(view: dict[str, Any]) -> None:
    """Print a view's history (a case's, an application's), warned when it was rewritten."""
    if view.get("history_intact") is False:
        out.print(Text(f"WARNING: this history was rewritten outside Conum ({view['history_broken']})", "bold red"))
    h = Table("at", "event", "from → to", "actor", "data")
    for row in view["history"]:
        h.add_row(
            row["at"],
            row["event"],
            f"{row['from'] or '∅'} → {row['to']}",
            row["actor"],
            json.dumps(row["data"], ensure_ascii=False) if row["data"] else "",
        )
    out.print(h)


def print_cases(cases: list[dict[str, Any]]) -> None:
    t = Table("case", "state", "structure", "candidate", "level", "deadline", "next action")
    for c in cases:
        t.add_row(
            str(c["id"]),
            c["state"],
            str(c["structure_id"]),
            str(c["candidate_id"]),
            str(c["escalation_level"]),
            c["deadline_at"] or "",
            c["due_at"] or "",
        )
    out.print(t)
    out.print(f"{len(cases)} case(s)")
