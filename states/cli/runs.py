"""Commands of the runs the schedules make (sweep, payments, anonymisation) and the scripted walk."""

from __future__ import annotations

from typing import Annotated

import typer

from states import errors
from states.cli.app import (
    EXIT_HELD,
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
    url,
    warn,
)

Wait = Annotated[
    float | None,
    typer.Option(
        "--wait",
        min=0,
        help="Seconds to wait, at most, for due cases another run or action holds (PostgreSQL; default 10).",
    ),
]


def _held(held: list[int], command: str) -> None:
    """Exit with EXIT_HELD, saying on one line which due cases were held and left undone."""
    if held:
        shown = ", ".join(map(str, held[:20])) + (", …" if len(held) > 20 else "")
        warn(
            f"{len(held)} due case(s) held by another run or action were left undone ({shown}) (rule: held): "
            f"run `conum {command}` again once it is over",
            EXIT_HELD,
        )


@app.command()
@guarded
def sweep(db: Db = None, as_json: Json = False, at: At = None, actor: Actor = "system", wait: Wait = None) -> None:
    """Send every reminder, escalation and time-out due."""
    from states import batch

    if actor != "system":
        raise errors.NotAllowed(f"{actor} may not run the sweep (rule: who acts): it acts as system")
    report = batch.sweep(engine(db), instant(at), policy(), wait=wait)
    counts: dict[str, object] = {**report.counts(), **({"held": report.held} if report.held else {})}
    emit(
        counts,
        as_json,
        lambda: out.print(
            f"{counts['reminded']} reminded, {counts['escalated']} escalated, {counts['timed_out']} timed out"
        ),
    )
    _held(report.held, "sweep")


@app.command()
@guarded
def pay(db: Db = None, as_json: Json = False, at: At = None, actor: Actor = "system", wait: Wait = None) -> None:
    """Pay every tranche due."""
    from states import batch

    if actor != "system":
        raise errors.NotAllowed(f"{actor} may not pay tranches (rule: who acts): payments act as system")
    report = batch.pay(engine(db), instant(at), policy(), wait=wait)
    result: dict[str, object] = {"paid": report.paid, "amount_cents": report.amount_cents}
    if report.held:
        result["held"] = report.held
    emit(result, as_json, lambda: out.print(f"{report.paid} tranche(s) paid, {report.amount_cents / 100:,.2f} €"))
    _held(report.held, "pay")


@app.command()
@guarded
def anonymise(db: Db = None, as_json: Json = False, at: At = None, actor: Actor = "system") -> None:
    """Anonymise the candidates not retained, once their retention period is over."""
    from states.privacy import anonymise as run

    if actor not in ("system", "admin"):
        raise errors.NotAllowed(f"{actor} may not anonymise candidates (rule: who acts): only system or admin may")
    from states.config import settings

    count = run(engine(db), instant(at), policy(), mail_dir=settings().mail_dir)
    emit({"anonymised": count}, as_json, lambda: out.print(f"{count} candidate(s) anonymised"))


@app.command()
@guarded
def verify(
    case: Annotated[int | None, typer.Option("--case", help="Only this case.")] = None,
    db: Db = None,
    as_json: Json = False,
    at: At = None,
) -> None:
    """Check the hash chain of every case's history; name the first broken row of each case."""
    from states.audit import verify as check

    instant(at)
    result = check(engine(db), case)

    def human() -> None:
        out.print(f"{result.rows} history row(s) of {result.cases} case(s) checked")
        for b in result.broken:
            out.print(f"case {b.case_id}: row {b.history_id if b.history_id is not None else '(end)'}: {b.reason}")
        out.print("the history is intact" if result.ok else f"{len(result.broken)} case(s) with a broken history")

    emit(result.to_dict(), as_json, human)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
@guarded
def demo(db: Db = None, as_json: Json = False, at: At = None) -> None:
    """Walk a few scripted cases through every path of the lifecycle and print their histories."""
    from states.db import migrate
    from states.demo import print_walk, walk

    start = instant(at).isoformat() if at else "2026-01-05T09:00"
    engine(db, create=True)
    migrate(url(db))
    views = walk(engine(db), policy(), start)
    emit({"cases": views}, as_json, lambda: print_walk(views, out))
