"""The ``conum`` command: the contract other tools and the tests drive.

Every subcommand takes ``--db URL``, ``--json`` and ``--at DATETIME``;
commands that change something take ``--actor``. A refused command prints one
message on stderr naming the rule and what to do, prints nothing on stdout,
exits non-zero (1: a rule or permission refused, 2: bad input, 3: a
concurrent change, 4: not found) and leaves the database untouched.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from states import errors

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    help="Conum: recruitments of conseillers numériques as durable state machines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
structure_app = typer.Typer(help="Host structures.", no_args_is_help=True)
candidate_app = typer.Typer(help="Candidates of the national pool.", no_args_is_help=True)
org_app = typer.Typer(help="Approved training organisations.", no_args_is_help=True)
app.add_typer(structure_app, name="structure")
app.add_typer(candidate_app, name="candidate")
app.add_typer(org_app, name="training-org")

Db = Annotated[
    str | None, typer.Option("--db", help="SQLAlchemy URL (default: CONUM_DATABASE_URL or sqlite:///./conum.db).")
]
Json = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")]
At = Annotated[
    str | None, typer.Option("--at", help="Instant of the action or read (ISO 8601; Europe/Paris if no offset).")
]
Actor = Annotated[
    str, typer.Option("--actor", help="admin, system, structure:<id>, candidate:<id> or prefet:<département>.")
]

EXIT = {errors.BadInput: 2, errors.Conflict: 3, errors.NotFound: 4}
# piped output is not cut to 80 columns: states and instants stay whole
out = Console() if sys.stdout.isatty() else Console(width=200)


def _fail(message: str, code: int) -> None:
    Console(stderr=True).print(f"[bold red]refused:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def guarded(fn: F) -> F:
    """Turn every refusal into one message on stderr and a non-zero exit, with nothing on stdout."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except errors.ConumError as exc:
            _fail(str(exc), EXIT.get(type(exc), 1))
        except OverflowError:
            _fail("a number or a date is out of range: give an id, amount or instant of a sensible size", 2)
        except Exception as exc:  # the database itself refused: say so, nothing was committed
            from sqlalchemy.exc import SQLAlchemyError

            if isinstance(exc, SQLAlchemyError):
                _fail(
                    f"database error: {getattr(exc, 'orig', exc)}; nothing was changed. Check --db and run "
                    "`conum init`",
                    1,
                )
            raise

    return wrapper  # type: ignore[return-value]


def _emit(obj: dict[str, Any], as_json: bool, human: Callable[[], None] | None = None) -> None:
    if as_json or human is None:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    else:
        human()


def _url(db: str | None) -> str:
    from states.config import settings

    return db or settings().database_url


def _check_sqlite_file(path: Path) -> None:
    """Refuse a missing or schema-less SQLite file without writing to it (read-only look)."""
    import sqlite3

    if not path.is_file():
        raise errors.NotFound(f"no database at {path}: run `conum init` first")
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'recruitment_case'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise errors.BadInput(
            f"{path} is not a Conum database ({exc}): give the right --db or run `conum init`"
        ) from None
    if not found:
        raise errors.NotFound(f"the database at {path} has no Conum schema: run `conum init` first")


def _engine(db: str | None, *, create: bool = False) -> Any:
    from sqlalchemy.engine import make_url

    from states.db import get_engine, has_schema

    url = _url(db)
    try:
        parsed = make_url(url)
    except Exception:
        raise errors.BadInput(
            f"'{url}' is not a database URL: use e.g. sqlite:///./conum.db or postgresql+psycopg://user@host:5432/db"
        ) from None
    if not create and parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        _check_sqlite_file(Path(parsed.database))
    engine = get_engine(url)
    if not create and not has_schema(engine):
        raise errors.NotFound(
            f"the database at {parsed.render_as_string(hide_password=True)} has no Conum schema: run `conum init` first"
        )
    return engine


def _at(at: str | None) -> datetime:
    from states.clock import now, parse_instant

    return parse_instant(at) if at else now()


def _policy() -> Any:
    from states.config import policy

    return policy()


def _write(db: str | None) -> Any:
    from states.db import write_session

    return write_session(_engine(db))


# ---------------------------------------------------------------- commands


@app.command()
@guarded
def init(db: Db = None, as_json: Json = False, at: At = None, actor: Actor = "admin") -> None:
    """Create or upgrade the schema."""
    from states.db import migrate
    from states.service import parse_actor

    _at(at)
    if parse_actor(actor) not in ("admin", "system"):
        raise errors.NotAllowed(f"{actor} may not change the schema (rule: who acts): only admin or system may")
    _engine(db, create=True)
    migrate(_url(db))
    _emit({"ok": True}, as_json, lambda: out.print("schema is up to date"))


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

    _at(at)
    with _write(db) as s:
        sid = add_structure(s, name=name, departement=departement, posts=posts, kind=kind, email=email, actor=actor)
    _emit({"id": sid}, as_json, lambda: out.print(f"structure {sid} added"))


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

    _at(at)
    with _write(db) as s:
        cid = add_candidate(s, name=name, email=email, departement=departement, consent=consent, actor=actor)
    _emit({"id": cid}, as_json, lambda: out.print(f"candidate {cid} added"))


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

    _at(at)
    with _write(db) as s:
        oid = add_training_org(s, name=name, email=email, actor=actor)
    _emit({"id": oid}, as_json, lambda: out.print(f"training organisation {oid} added"))


def _show_case(view: dict[str, Any], as_json: bool) -> None:
    _emit(view, as_json, lambda: print_case(view))


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

    when = _at(at)
    with _write(db) as s:
        case = service.present(s, structure, candidate, actor=actor, at=when, policy=_policy())
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
    set_: Annotated[list[str] | None, typer.Option("--set", help="Event data KEY=VALUE (repeatable).")] = None,
    db: Db = None,
    as_json: Json = False,
    at: At = None,
    actor: Actor = "admin",
) -> None:
    """Fire an event on a case."""
    from states import service
    from states.views import case_view

    when = _at(at)
    data = _parse_sets(set_ or [])
    with _write(db) as s:
        fired = service.fire(s, case, event, actor=actor, at=when, data=data, policy=_policy())
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
    """Show a case: state, deadlines, money, tranches and history."""
    from states.views import get_case

    _at(at)
    _show_case(get_case(_engine(db), case), as_json)


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
    when = _at(at)
    with read_session(_engine(db)) as s:
        cases = list_cases(s, at=when, state=state, departement=departement, overdue=overdue)
    _emit({"cases": cases}, as_json, lambda: print_cases(cases))


@app.command()
@guarded
def sweep(db: Db = None, as_json: Json = False, at: At = None, actor: Actor = "system") -> None:
    """Send every reminder, escalation and time-out due."""
    from states import batch

    if actor != "system":
        raise errors.NotAllowed(f"{actor} may not run the sweep (rule: who acts): it acts as system")
    report = batch.sweep(_engine(db), _at(at), _policy())
    counts = report.counts()
    _emit(
        counts,
        as_json,
        lambda: out.print(
            f"{counts['reminded']} reminded, {counts['escalated']} escalated, {counts['timed_out']} timed out"
        ),
    )


@app.command()
@guarded
def pay(db: Db = None, as_json: Json = False, at: At = None, actor: Actor = "system") -> None:
    """Pay every tranche due."""
    from states import batch

    if actor != "system":
        raise errors.NotAllowed(f"{actor} may not pay tranches (rule: who acts): payments act as system")
    report = batch.pay(_engine(db), _at(at), _policy())
    result = {"paid": report.paid, "amount_cents": report.amount_cents}
    _emit(result, as_json, lambda: out.print(f"{report.paid} tranche(s) paid, {report.amount_cents / 100:,.2f} €"))


@app.command()
@guarded
def anonymise(db: Db = None, as_json: Json = False, at: At = None, actor: Actor = "system") -> None:
    """Anonymise the candidates not retained, once their retention period is over."""
    from states.privacy import anonymise as run

    if actor not in ("system", "admin"):
        raise errors.NotAllowed(f"{actor} may not anonymise candidates (rule: who acts): only system or admin may")
    count = run(_engine(db), _at(at), _policy())
    _emit({"anonymised": count}, as_json, lambda: out.print(f"{count} candidate(s) anonymised"))


@app.command()
@guarded
def events(
    state: Annotated[str | None, typer.Argument(help="Only the events allowed from this state.")] = None,
    db: Db = None,
    as_json: Json = False,
    at: At = None,
) -> None:
    """List the lifecycle table, or the events allowed from STATE."""
    from states.lifecycle import State, table_rows

    _at(at)

    if state is not None and state not in {s.value for s in State}:
        raise errors.BadInput(f"unknown state '{state}': use one of {', '.join(s.value for s in State)}")
    rows = table_rows(state)

    def human() -> None:
        table = Table("event", "from", "to", "who")
        for r in rows:
            table.add_row(r["event"], r["from"], r["to"], ", ".join(r["who"]))
        out.print(table)

    _emit({"events": rows}, as_json, human)


# ---------------------------------------------------------------- human views


def _euros(cents: int | None) -> str:
    return "–" if cents is None else f"{cents / 100:,.2f} €".replace(",", " ")


def print_case(view: dict[str, Any]) -> None:
    out.print(f"[bold]Case {view['id']}[/] — {view['label']} ([cyan]{view['state']}[/]), version {view['version']}")
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


@app.command()
@guarded
def demo(db: Db = None, as_json: Json = False, at: At = None) -> None:
    """Walk a few scripted cases through every path of the lifecycle and print their histories."""
    from states.db import migrate
    from states.demo import print_walk, walk

    start = _at(at).isoformat() if at else "2026-01-05T09:00"
    _engine(db, create=True)
    migrate(_url(db))
    views = walk(_engine(db), _policy(), start)
    _emit({"cases": views}, as_json, lambda: print_walk(views, out))


def _prefect_environment() -> None:
    """Point Prefect at the server of `make up` if one answers, else at a temporary server kept in run/.

    Set before Prefect is imported: telemetry off, the temporary server's files in run/prefect (where
    `make up` finds the runs afterwards), its console logs limited to warnings (the progress bar is
    the terminal's view; the runs' logs go to the server).
    """
    import os
    import urllib.request

    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    if os.environ.get("PREFECT_API_URL"):
        return
    api = f"http://127.0.0.1:{os.environ.get('PREFECT_PORT', '4200')}/api"
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=0.5) as answer:
            if answer.status == 200:
                os.environ["PREFECT_API_URL"] = api
                return
    except OSError:
        pass
    os.environ.setdefault("PREFECT_HOME", str(Path("run/prefect").resolve()))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_ENABLED", "true")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


def _start_temporary_server() -> Callable[[], None]:
    """Start Prefect's temporary server in the background, if Prefect is to use one; return a wait.

    The server takes seconds to boot in its own process; meanwhile this one imports the flows and
    checks its input. The wait returns once the server answers (at once if there is no temporary server).
    """
    import contextlib
    import os
    import threading

    if os.environ.get("PREFECT_API_URL"):
        return lambda: None
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the one instance Prefect's client uses too

    def start() -> None:
        with contextlib.suppress(Exception):  # if it fails, the flow's own start tries again and says why
            server.start()

    thread = threading.Thread(target=start, name="prefect-temporary-server", daemon=True)
    thread.start()
    return thread.join


@app.command()
@guarded
def simulate(
    posts: Annotated[int, typer.Option("--posts", help="Posts attributed in the whole programme.")] = 4000,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same programme and figures to the cent.")] = 1,
    start: Annotated[str, typer.Option("--start", help="The programme's first day (YYYY-MM-DD).")] = "2026-01-05",
    report: Annotated[
        Path,
        typer.Option(
            "--report", help="The HTML report; e-mails and payment orders go into mail/ and payments/ next to it."
        ),
    ] = Path("run/sim/report.html"),
    db: Annotated[
        str | None, typer.Option("--db", help="A new or empty database (default: simulation.db next to the report).")
    ] = None,
    as_json: Json = False,
    at: At = None,
) -> None:
    """Run a whole programme in fast-forward through the real system, as one Prefect flow run; write a report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from states.simulation import default_database, make_config, preflight

    config = make_config(posts, seed, start, _policy())
    when = _at(at)
    url = db or default_database(report)
    preflight(url, report)
    _prefect_environment()
    server_ready = _start_temporary_server()
    from flows.simulate import listening, simulate_programme

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("months · {task.fields[actions]} actions · {task.fields[paid]} tranches paid"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    task = bar.add_task("starting Prefect", total=None, actions=0, paid=0)
    totals = {"actions": 0, "paid": 0}

    def started(months: int) -> None:
        bar.update(task, total=months, description="simulating")

    def month_done(done: Any, count: int) -> None:
        totals["actions"] += done.actions
        totals["paid"] += done.payments
        bar.update(
            task, completed=count, description=f"month {done.month}", actions=totals["actions"], paid=totals["paid"]
        )

    with bar, listening(started, month_done):
        bar.update(task, completed=0)
        server_ready()
        result = simulate_programme(
            posts=config.posts,
            seed=config.seed,
            start=config.start.isoformat(),
            database_url=url,
            report=str(report),
            at=when,
        )
        if bar.tasks[0].total:
            bar.update(task, completed=bar.tasks[0].total, description="programme over")

    def human() -> None:
        table = Table("Indicateur", "Valeur", title="Programme simulé")
        for row in result["headline"]:
            table.add_row(row["label"], row["value"])
        out.print(table)
        for check in result["reconciliation"]["checks"]:
            mark = "[green]OK[/]" if check["ok"] else f"[red]{len(check['violations'])} écart(s)[/]"
            out.print(f"{mark}  {check['label']} ({check['checked']} vérifiés)")
            for violation in check["violations"][:20]:
                out.print(f"    {violation}", highlight=False)
        out.print(f"reconciliation: {'OK' if result['ok'] else 'VIOLATIONS'}")
        out.print(f"report: {result['report']}")

    _emit(result, as_json, human)
    if not result["ok"]:
        raise typer.Exit(1)


def main() -> None:
    app()
