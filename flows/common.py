"""What every Conum flow shares: settings, engine, policy, artifacts and the heartbeat choice.

The flows are thin: they read the settings (``CONUM_*`` environment, see
``states.config``), call the domain core and turn its reports into Prefect
artifacts, logs and events.

Heartbeats. A Prefect flow run sends a heartbeat event every 180 s from a
thread so that the server can tell a crashed run; a *synchronous* flow run
then waits up to one second at its end for that thread to stop. Conum keeps
heartbeats on for every run the worker starts: those runs pay a process start
of several seconds anyway, and a sweep, a payment run or a delivery that dies
silently must show as crashed. Code that runs many short flow runs in one
process (the simulation, the tests, the benchmarks) wraps them in
``without_heartbeats()``, which turns them off for that process only and
saves about a second per run.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.exceptions import FailedRun
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from sqlalchemy import Engine

from states import config
from states.clock import now, utc
from states.db import get_engine
from states.errors import Held
from states.policy import Policy


class AnswersAreNotCrashes(logging.Filter):
    """Keep a refusal's run log to its one French line.

    A flow that refuses (or finds work held) returns a ``Failed`` state with that line. Run by a worker,
    Prefect's engine then re-raises that state as ``FailedRun`` and logs it on the run as an "unexpected
    exception" with a traceback. Only that record is dropped: a flow that raises keeps its traceback,
    since its exception is its own, not ``FailedRun``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, FailedRun) and record.getMessage().startswith("Engine execution exited"))


logging.getLogger("prefect.flow_runs").addFilter(AnswersAreNotCrashes())

#: Prefect refuses (and fails the whole run for) an artifact key with anything but these characters.
_KEY = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
#: A table artifact lists at most this many rows; the markdown summary always gives the whole count.
MAX_ROWS = 1000


def settings() -> config.Settings:
    """Return the settings in force (read again whenever the environment changed: ``states.config.settings``)."""
    return config.settings()


def engine() -> Engine:
    """Return the engine of ``CONUM_DATABASE_URL``."""
    return get_engine(settings().database_url)


def policy() -> Policy:
    """Return the programme policy in force (defaults, overridden by ``CONUM_POLICY_FILE``)."""
    return config.policy()


def instant(at: datetime | None) -> datetime:
    """Return ``at`` as a UTC instant, or now: every flow takes the instant it acts at as a parameter."""
    return utc(at) if at is not None else now()


def artifact_key(*parts: str | int) -> str:
    """Build an artifact key Prefect accepts from ``parts``: lowercase letters, digits, single dashes."""
    raw = "-".join(str(p) for p in parts).lower()
    key = re.sub(r"[^a-z0-9]+", "-", raw).strip("-")
    if not _KEY.match(key):
        raise ValueError(f"cannot build an artifact key from {parts!r}: give at least one letter or digit")
    return key


def _checked(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError(f"artifact key {key!r} is invalid: use lowercase letters, digits and dashes only")
    return key


def table(key: str, rows: Sequence[dict[str, Any]], description: str) -> UUID:
    """Publish ``rows`` as a table artifact (the first ``MAX_ROWS``; the description says when cut)."""
    shown = list(rows[:MAX_ROWS])
    if len(rows) > len(shown):
        description += f" (first {len(shown)} of {len(rows)} rows)"
    return cast(UUID, create_table_artifact(shown, key=_checked(key), description=description))


def markdown(key: str, text: str, description: str) -> UUID:
    return cast(UUID, create_markdown_artifact(text, key=_checked(key), description=description))


class Progress:
    """A progress artifact fed by a ``done`` count out of an expected ``total``."""

    def __init__(self, key: str, total: int, description: str) -> None:
        self.total = total
        self.id = cast(UUID, create_progress_artifact(0.0, key=_checked(key), description=description))

    def __call__(self, done: int) -> None:
        share = 100.0 if self.total <= 0 else min(100.0, 100.0 * done / self.total)
        update_progress_artifact(self.id, share)

    def finish(self) -> None:
        update_progress_artifact(self.id, 100.0)


@contextmanager
def without_heartbeats() -> Iterator[None]:
    """Run the flow runs started inside without heartbeats (see the module docstring for when)."""
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def fail_if_held(held: Sequence[int], run_name: str) -> None:
    """Fail the run, on one French line, when due cases held by another run or action were left undone.

    A batch run that left work undone must not look like a success: the run ends ``Failed`` and the
    next scheduled run (or a manual one) does what is left.
    """
    if held:
        shown = ", ".join(map(str, held[:20])) + (", …" if len(held) > 20 else "")
        raise Held(
            f"{len(held)} dossier(s) dû(s) verrouillé(s) par une autre exécution ou action n'ont pas été traités "
            f"({shown}) : relancez {run_name} une fois celle-ci terminée"
        )


#: Threads for a call to the Prefect API that need not hold up the run (``in_background``).
_BACKGROUND = ThreadPoolExecutor(max_workers=2, thread_name_prefix="conum-api")


def in_background(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """Start ``fn(*args)`` in a thread, in the run's context (its client, its run); the caller waits for
    it (``.result()``) before the run ends, so that a failure of it fails the run as if it ran inline."""
    return _BACKGROUND.submit(contextvars.copy_context().run, fn, *args)
