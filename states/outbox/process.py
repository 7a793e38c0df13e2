"""The outbox delivery in a process of its own, beside the simulation's day loop.

In production the delivery deployment runs in its own process, every few
minutes, while people and the other deployments change cases. The
simulation does the same: ``BackgroundDelivery`` starts one delivery process
(``python -m states.outbox.process``) and, at the end of each simulated day that
wrote to the outbox, asks it to deliver what is due at that day's delivery
hour. The day loop goes on with the next day while the mail of the last one
is rendered and written, on the machine's other core.

Same mail, whatever the timing. Before the day loop moves on, the delivery
process opens a read transaction (``states.db.snapshot``) on the database as
it is at the end of the day and answers; the notifications of that day are
then rendered from that snapshot, not from the cases as they are by the time
the process gets to them. The rows due at a day's delivery hour are all
written by then (the next day's rows are due later), so every ``.eml`` file
and payment order is the same, byte for byte, as with the delivery run in the
day loop itself. Claims and results are recorded in short write
transactions, which queue with the day loop's on SQLite (``BEGIN IMMEDIATE``).

It dies with the simulation: killed by the kernel when the process that started it ends (Linux, when
started from the main thread: ``states.processes``), and it stops by itself when its standard input
closes.

Protocol: on the process's standard input, one JSON line with the database
URL and the delivery settings, then one JSON line per request
(``{"op": "deliver", "at": ISO-8601}`` or ``{"op": "drain"}``); one JSON line
per answer on its standard output; logs go to standard error. The process
keeps at most ``BACKLOG`` days waiting: beyond that its answer waits, and so
does the day loop. A delivery that fails (the database unreachable, a folder
not writable) stops the process's work; the next answer carries the error,
which the day loop raises.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import subprocess
import sys
import threading
from collections import Counter, deque
from datetime import datetime, timedelta
from typing import IO, Any

from sqlalchemy import Connection, Engine

from states.config import Settings
from states.errors import ConumError
from states.processes import die_with_parent

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: Days of mail the delivery process may have waiting before the day loop waits for it.
BACKLOG = 20
#: The delivery process's claims last this long in simulated time; it never falls behind by more than
#: ``LEASE - LEASE_MARGIN``, so that no claim of its runs out while it renders (which would send twice).
LEASE = timedelta(days=7)
LEASE_MARGIN = timedelta(days=1)
CLAIM = 500  # rows per claim
UNIT = 8  # rows the worker renders and writes between two turns of the reader
#: Results are recorded once this many wait, or once the oldest is this old in simulated time (well
#: within ``LEASE``: the rows stay claimed meanwhile).
RECORD_ROWS = 1000
RECORD_AFTER = timedelta(days=3)


class DeliveryFailed(ConumError):
    """The delivery process stopped or reported an error."""

    rule = "delivery"


class BackgroundDelivery:
    """A delivery process for one database and one mail folder; ``day_over`` per day, ``drain`` at the end."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        url = engine.url.render_as_string(hide_password=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "states.outbox.process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=die_with_parent() if threading.current_thread() is threading.main_thread() else None,
        )
        self.totals: dict[str, int] | None = None
        # the first line: what to deliver with (on the pipe, not the command line: it may hold a password)
        self._write({"url": url, "settings": settings.model_dump(mode="json")})

    def _write(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            self._write(message)
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = self.proc.wait()
            raise DeliveryFailed(
                f"the delivery process stopped (exit code {code}); its messages are above. The outbox rows it "
                "did not send stay pending: the deliver-notifications deployment sends them once the cause is fixed"
            )
        answer: dict[str, Any] = json.loads(line)
        if answer.get("error"):
            self.close()
            raise DeliveryFailed(f"the delivery process failed: {answer['error']}")
        return answer

    def day_over(self, at: datetime) -> None:
        """Have the mail due at ``at`` delivered, as the database is now; return once that is fixed."""
        self._ask({"op": "deliver", "at": at.isoformat()})

    def drain(self) -> dict[str, int]:
        """Wait until every requested delivery is done; return the counts (sent, retried, failed)."""
        if self.totals is None:
            self.totals = self._ask({"op": "drain"})["done"]
            self.close()
        return self.totals

    def close(self) -> None:
        """Stop the process (what it has not delivered stays pending in the outbox)."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stdin):
            if stream is not None and not stream.closed:
                with contextlib.suppress(OSError):
                    stream.close()


def _serve(engine: Engine, settings: Settings, requests: IO[str], answers: IO[str]) -> None:
    """The delivery process: the reader claims and records while the day loop waits, the worker renders."""
    from states.db import snapshot
    from states.outbox import DeliveryReport, attempt, claim, prepare, record

    work: queue.Queue[tuple[datetime, list[Any], Connection] | None] = queue.Queue(maxsize=BACKLOG)
    finished: list[tuple[datetime, Any, Any]] = []  # (at, job, sent or None), to record
    in_flight: deque[datetime] = deque()  # the instants of the requests the worker has not finished
    turn = threading.Condition()
    totals: Counter[str] = Counter()
    failure: list[str] = []
    stop = threading.Event()
    gate = threading.Lock()  # held by the worker while it renders a few rows, by the reader while it claims

    def worker() -> None:
        while (item := work.get()) is not None:
            at, taken, snap = item
            try:
                for start in range(0, len(taken), UNIT):
                    if failure or stop.is_set():  # its claimed rows wait for their lease to end
                        break
                    with gate:  # a few rows at a time: the reader takes its turn in between
                        jobs = prepare(snap, taken[start : start + UNIT], settings)
                        done = [(at, job, attempt(job, settings, None, at)) for job in jobs]
                    with turn:
                        finished.extend(done)
            except Exception as exc:
                logger.exception("delivery at %s failed", at.isoformat())
                failure.append(f"{type(exc).__name__}: {exc}")
            finally:
                snap.close()
                with turn:
                    in_flight.popleft()
                    turn.notify_all()

    def record_finished() -> None:
        with turn:
            done, finished[:] = list(finished), []
        by_instant: dict[datetime, list[Any]] = {}
        for at, job, sent in done:
            by_instant.setdefault(at, []).append((job, sent))
        for at, results in by_instant.items():
            report = DeliveryReport()
            record(engine, results, at, settings, report)
            totals.update(report.counts())

    def deliver_at(at: datetime) -> None:
        with turn:  # claims hold for LEASE of simulated time: never fall that far behind
            turn.wait_for(lambda: not in_flight or in_flight[0] + LEASE - LEASE_MARGIN > at or bool(failure))
        if failure:
            return
        with gate:  # the worker waits meanwhile: the day loop waits for this part
            taken, snap = claim_day(at)
        with turn:
            in_flight.append(at)
        work.put((at, taken, snap))  # may wait for room (BACKLOG), never while holding the gate

    def claim_day(at: datetime) -> tuple[list[Any], Connection]:
        with turn:
            due = bool(finished) and (len(finished) >= RECORD_ROWS or finished[0][0] + RECORD_AFTER <= at)
        if due:  # results wait a little, to be written many at once (always before their claims run out)
            record_finished()
        taken: list[Any] = []
        while True:
            report = DeliveryReport()
            part = claim(engine, at, settings, CLAIM, None, report, lease=LEASE)
            totals.update(report.counts())
            taken += part
            if len(part) < CLAIM:
                break
        return taken, snapshot(engine)  # the day as it ends: what the mail of the day says

    thread = threading.Thread(target=worker, name="deliver", daemon=True)
    thread.start()

    def answer(**fields: Any) -> None:
        answers.write(json.dumps(fields) + "\n")
        answers.flush()

    for line in requests:
        message = json.loads(line)
        try:
            if message["op"] == "deliver" and not failure:
                deliver_at(datetime.fromisoformat(message["at"]))
            elif message["op"] == "drain":
                work.put(None)
                thread.join()
                if not failure:
                    record_finished()
                answer(done=dict(totals), error=failure[0] if failure else None)
                return
        except Exception as exc:
            logger.exception("delivery failed")
            failure.append(f"{type(exc).__name__}: {exc}")
        answer(ok=not failure, error=failure[0] if failure else None)
    # the day loop went away (it stopped, or failed): leave the days not rendered yet, record the rest
    stop.set()
    work.put(None)
    thread.join()
    if not failure:
        record_finished()


def main() -> None:
    config = json.loads(sys.stdin.readline())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="delivery process: %(message)s")
    sys.setswitchinterval(0.0002)  # answer the day loop promptly while the worker renders
    from states.db import get_engine

    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # nothing else may write on the answers' channel: standard output now goes to standard error
    sys.stdout = sys.stderr
    engine = get_engine(config["url"], pool_size=BACKLOG + 4)  # a snapshot per waiting day, and the worker's
    _serve(engine, Settings(**config["settings"]), sys.stdin, answers)


if __name__ == "__main__":
    main()
