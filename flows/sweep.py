"""``sweep-deadlines``: every reminder, escalation and time-out due, in one flow run.

The work is ``states.batch.sweep``: chunks of cases, one transaction each, so
that thousands of cases make one run (not a task per case) and a crash loses
at most the chunk in progress. Each deadline step fires exactly once, even when
two sweeps run at once or a sweep runs again after a crash: the step and the
move of the case's next due instant commit together.

Artifacts: ``sweep-deadlines-progress`` (progress over the cases due when the
run started), ``sweep-deadlines`` (a table: case, action, level, due_at) and
``sweep-deadlines-summary`` (markdown).
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger

from flows.common import MAX_ROWS, Progress, engine, fail_if_held, instant, markdown, policy, table
from states import batch
from states.dashboard import due_count
from states.db import read_session
from states.labels import escalation, event_label, text, when_long
from states.labels import when as when_cell


@flow(name="sweep-deadlines", retries=0, persist_result=False)
def sweep_deadlines(at: datetime | None = None, chunk: int = 500) -> dict[str, int]:
    """Send every reminder, escalation and time-out due; return the counts.

    Args:
        at: The instant of the sweep (default now): every step due on or before it is done.
        chunk: Cases per transaction.
    """
    logger = get_run_logger()
    when = instant(at)
    eng = engine()
    with read_session(eng) as session:
        expected = due_count(session, when)
    stamp = when_long(when)
    progress = Progress("sweep-deadlines-progress", expected, f"Échéances dues au {stamp}")
    report = batch.sweep(eng, when, policy(), chunk=chunk, progress=progress)
    progress.finish()
    rows = [
        {
            "dossier": s.case_id,
            "action": event_label(s.action),
            "escalade": escalation(s.level, short=True),
            "échéance": when_cell(s.due_at),
        }
        for s in report.steps
    ]
    table("sweep-deadlines", rows, f"Ce qu'a fait le balayage des échéances du {stamp}")
    counts = report.counts()
    lines = [
        f"# Balayage des échéances du {stamp}",
        "",
        f"- dossiers dont une échéance était due au départ : {expected}",
        f"- relancés : {counts['reminded']}",
        f"- escaladés : {counts['escalated']}",
        f"- délai dépassé (dossier clos) : {counts['timed_out']}",
        f"- laissés (refusés par une règle) : {len(report.failures)}",
        *(f"  - dossier {case} : {text(why)}" for case, why in list(report.failures.items())[:MAX_ROWS]),
    ]
    markdown("sweep-deadlines-summary", "\n".join(lines) + "\n", f"Balayage des échéances du {stamp}")
    for case, why in report.failures.items():
        logger.warning("case %s skipped: %s", case, why)
    logger.info(
        "%s reminded, %s escalated, %s timed out, %s skipped",
        counts["reminded"],
        counts["escalated"],
        counts["timed_out"],
        len(report.failures),
    )
    fail_if_held(report.held, "le balayage des échéances")
    return {**counts, "skipped": len(report.failures)}
