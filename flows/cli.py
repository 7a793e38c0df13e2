"""The ``conum`` entry point: the domain's commands (``states.cli``) and those that need Prefect.

``simulate`` runs a whole programme as one Prefect flow run; it lives here
because the domain imports no Prefect. Prefect is imported only when such a
command runs, so ``conum --help`` and the domain's commands stay fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from states.cli import app
from states.cli.app import At, Json, emit, guarded, instant, out, policy, run


def _prefect_quiet() -> None:
    """Before Prefect is imported: telemetry off, console logs limited to warnings (the progress bar is the
    terminal's view; the runs' logs go to the server)."""
    import os

    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")


def _stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that a terminated command stops its server and its children itself."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


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
    prefect_api: Annotated[
        str | None,
        typer.Option(
            "--prefect-api",
            help="Send the runs to this Prefect API (e.g. http://127.0.0.1:4200/api), with the login of "
            "PREFECT_API_AUTH_STRING or run/api-auth; default: a temporary server of the command's own.",
        ),
    ] = None,
    as_json: Json = False,
    at: At = None,
) -> None:
    """Run a whole programme in fast-forward through the real system, as one Prefect flow run; write a report.

    The runs go to a temporary Prefect server started for the command and ended with it (never to a server
    already running, whatever PREFECT_API_URL says), unless --prefect-api names one.
    """
    import contextlib

    from states.simulation import default_database, make_config, preflight

    config = make_config(posts, seed, start, policy())
    when = instant(at)
    url = db or default_database(report)
    preflight(url, report)
    _prefect_quiet()
    _stop_on_sigterm()
    from flows.server import TemporaryServer, api_auth, check_api, use_api

    with contextlib.ExitStack() as stack:
        if prefect_api:
            auth = api_auth()
            check_api(prefect_api, auth)
            use_api(prefect_api, auth)
            server = None
        else:
            auth = None
            server = stack.enter_context(TemporaryServer())  # it boots while Prefect is imported below
            use_api(server.api_url, None, home=server.home)
        result = _simulate(server, auth, config, url, report, when)

    def human() -> None:
        table = Table("Indicateur", "Valeur", title="Programme simulé")
        for row in result["headline"]:
            table.add_row(row["label"], row["value"])
        out.print(table)
        for check in result["reconciliation"]["checks"]:
            mark = ("OK", "green") if check["ok"] else (f"{len(check['violations'])} écart(s)", "red")
            out.print(Text.assemble(mark, f"  {check['label']} ({check['checked']} vérifiés)"))
            for violation in check["violations"][:20]:
                out.print(f"    {violation}")
        out.print(f"reconciliation: {'OK' if result['ok'] else 'VIOLATIONS'}")
        out.print(f"report: {result['report']}")

    emit(result, as_json, human)
    if not result["ok"]:
        raise typer.Exit(1)


def _simulate(server: Any, auth: str | None, config: Any, url: str, report: Path, when: Any) -> dict[str, Any]:
    """Run the simulation flow against the server chosen, with a progress bar on stderr; return its result.

    The server is the one of ``PREFECT_API_URL`` as ``use_api`` set it, also when Prefect was imported before.
    """
    import os

    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY, PREFECT_API_URL, temporary_settings
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flows.server import flush_to_server
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
        if server is not None:
            server.wait_ready()
        updates: dict[Any, Any] = {PREFECT_API_URL: os.environ["PREFECT_API_URL"]}
        if auth:
            updates[PREFECT_API_AUTH_STRING] = auth
        unset = [PREFECT_API_KEY] + ([] if auth else [PREFECT_API_AUTH_STRING])
        with temporary_settings(updates=updates, restore_defaults=unset):
            result = simulate_programme(
                posts=config.posts,
                seed=config.seed,
                start=config.start.isoformat(),
                database_url=url,
                report=str(report),
                at=when,
            )
            flush_to_server()
        if bar.tasks[0].total:
            bar.update(task, completed=bar.tasks[0].total, description="programme over")

    return result


def main() -> None:
    run()
