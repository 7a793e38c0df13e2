"""The ``conum`` entry point: the domain's commands (``states.cli``) and those that need Prefect.

``simulate`` runs a whole programme as one Prefect flow run; it lives here
because the domain imports no Prefect. Prefect is imported only when such a
command runs, so ``conum --help`` and the domain's commands stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from states.cli import app
from states.cli.app import At, Json, emit, guarded, instant, out, policy, run


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
    home = Path(os.environ.get("PREFECT_HOME") or Path("run/prefect").resolve())
    home.mkdir(parents=True, exist_ok=True)  # Prefect creates only the last folder of its home
    os.environ["PREFECT_HOME"] = str(home)
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

    config = make_config(posts, seed, start, policy())
    when = instant(at)
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
            mark = ("OK", "green") if check["ok"] else (f"{len(check['violations'])} écart(s)", "red")
            out.print(Text.assemble(mark, f"  {check['label']} ({check['checked']} vérifiés)"))
            for violation in check["violations"][:20]:
                out.print(f"    {violation}")
        out.print(f"reconciliation: {'OK' if result['ok'] else 'VIOLATIONS'}")
        out.print(f"report: {result['report']}")

    emit(result, as_json, human)
    if not result["ok"]:
        raise typer.Exit(1)


def main() -> None:
    run()
