"""The campaigns that need a database: races, kills and injected faults.

Each runs on one backend, in a database of its own, and returns a ``Row`` of the table. After each
trial the invariants (``reliability.invariants``) are checked on the trial's cases; at the end of the
campaign on the whole database, and ``conum verify`` runs as a process on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from reliability.backends import database
from reliability.invariants import Ack, check
from reliability.world import PAY_AT, SWEEP_AT, World
from states.db import get_engine

ROOT = Path(__file__).resolve().parent.parent
CONUM = Path(sys.executable).with_name("conum")


@dataclass
class Row:
    """One line of the table: a campaign on a backend."""

    campaign: str
    backend: str
    tried: int = 0
    lost: set[str] = field(default_factory=set)
    doubled: set[str] = field(default_factory=set)
    half: set[str] = field(default_factory=set)
    tracebacks: list[str] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    #: the first refusals that were not one line on stderr, as they came
    shapes: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "backend": self.backend,
            "tried": self.tried,
            "lost": len(self.lost),
            "doubled": len(self.doubled),
            "half_written": len(self.half),
            "tracebacks": len(self.tracebacks),
            "notes": dict(self.notes),
            "seconds": round(self.seconds, 1),
        }

    def examples(self) -> list[str]:
        return (
            sorted(self.lost)[:3] + sorted(self.doubled)[:3] + sorted(self.half)[:3] + self.tracebacks[:2] + self.shapes
        )

    def checked(self, engine: Engine, acks: Iterable[Ack] = (), cases: Iterable[int] | None = None) -> None:
        found = check(engine, acks, cases)
        self.lost.update(found.lost)
        self.doubled.update(found.doubled)
        self.half.update(found.half)

    def judge(self, code: int, out: str, err: str, tb: str | None = None, who: str = "") -> None:
        """Count a traceback, and note refusals that are not one line, deadlocks and the exit codes."""
        if tb or "Traceback" in err:
            self.tracebacks.append(f"{who}: " + " | ".join((tb or err).strip().splitlines()[-8:]))
        elif code != 0 and (err.strip().count("\n") > 0 or (out.strip() and code != 5 and not _report(out))):
            # 5 (a batch run's report) and a JSON report asked with --json (an import's lines) come with one line
            self.notes["refusal not on one line"] += 1
            if len(self.shapes) < 2:
                self.shapes.append(f"{who}: not one line: exit {code}: " + " | ".join((out + err).strip().splitlines()))
        if "deadlock detected" in err:
            self.notes["deadlock detected"] += 1
        if code not in (0, 1, 2, 3, 4, 5, -9):
            self.notes[f"exit {code}"] += 1

    def finish(self, url: str, engine: Engine, acks: Iterable[Ack]) -> None:
        """The whole database: every invariant, and ``conum verify`` as a process."""
        self.checked(engine, acks)
        done = subprocess.run(
            [str(CONUM), "verify", "--db", url, "--json"], capture_output=True, text=True, env=environment(url)
        )
        self.judge(done.returncode, done.stdout, done.stderr, who="conum verify")
        if done.returncode != 0:
            self.half.add(f"conum verify: exit {done.returncode}: {(done.stdout + done.stderr).strip()[:300]}")


def _report(out: str) -> bool:
    """Whether ``out`` is one JSON object: the report a command asked with ``--json`` gives beside its refusal."""
    try:
        return isinstance(json.loads(out), dict)
    except ValueError:
        return False


def over(row: Row) -> bool:
    """Whether the campaigns' time is up (``RELIABILITY_UNTIL``, a Unix time, set by ``--minutes``)."""
    until = os.environ.get("RELIABILITY_UNTIL")
    if until and time.time() >= float(until):
        row.notes["stopped at the time limit"] = 1
        return True
    return False


def environment(url: str, folder: Path | None = None, faults: bool = False) -> dict[str, str]:
    """The environment of a process under test: this database, a simulated clock, files in ``folder``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONUM_")}
    env.update(CONUM_CLOCK="simulated", CONUM_DATABASE_URL=url, PYTHONPATH=str(ROOT), DO_NOT_TRACK="1")
    if folder is not None:
        env.update(CONUM_MAIL_DIR=str(folder / "mail"), CONUM_PAYMENT_DIR=str(folder / "payments"))
    if faults:
        env["CONUM_FAULTS"] = "1"
    return env


class Worker:
    """A ``reliability.worker`` process, fed one request at a time."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.errors = open(folder / f"worker-{id(self)}.err", "w+")  # noqa: SIM115 (closed in close)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reliability.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
            env=env,
            cwd=folder,
            start_new_session=True,
        )
        self.pending = False

    def send(self, request: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        if "ping" not in request:
            self.ready()
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the worker died: {self.stderr()[-2000:]}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ready(self) -> None:
        """Wait for the answer to the warm-up request, if any."""
        if self.pending:
            self.pending = False
            self.receive()

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        self.send(request)
        return self.receive()

    def stderr(self) -> str:
        self.errors.flush()
        self.errors.seek(0)
        return self.errors.read()

    def close(self, row: Row, killed: bool = False) -> None:
        if not killed:
            self.ready()  # its warm-up answer read: the worker ends when its input does
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()
        self.proc.wait(timeout=60)
        if not killed:
            row.judge(0, "", self.stderr(), who="worker")
        self.errors.close()


def judge_answer(row: Row, answer: dict[str, Any], who: str) -> None:
    row.judge(answer["code"], answer["out"], answer["err"], answer.get("traceback"), who)


def acked(answer: dict[str, Any], case: int, event: str) -> list[Ack]:
    return [Ack(case, event)] if answer["code"] == 0 else []


# ---------------------------------------------------------------- races

CONTRACT_SETS = ["--set", "type=CDI", "--set", "start=2026-04-01", "--set", "salary=1900.00"]


def _advance(case: int, event: str, *extra: str, actor: str = "admin", when: str = "2026-03-06T10:00") -> list[str]:
    return ["advance", str(case), event, *extra, "--actor", actor, "--at", when, "--json"]


def _present_case(answer: dict[str, Any]) -> int | None:
    if answer["code"] != 0:
        return None
    case: int = json.loads(answer["out"])["id"]
    return case


def races(backend: str, count: int, processes: int, seed: int = 1) -> Row:
    """``count`` races of two worker processes firing competing commands at the same moment, and
    ``processes`` more between two real ``conum`` processes (competing events, then two sweeps, then
    two payment runs); each race is checked on its cases."""
    rng = random.Random(seed)
    row, started = Row("races", backend), time.monotonic()
    with database(backend, "races") as (url, folder):
        engine, acks = get_engine(url), []
        world, env = World(engine), environment(url, folder)
        big = world.structure(posts=10**6)
        a, b = Worker(env, folder), Worker(env, folder)
        kinds = [
            "select/decline",
            "select/select",
            "present twice",
            "sign one post",
            "sign one candidate",
            "cancel/sign",
        ]
        for i in range(count):
            if over(row):
                break
            kind = kinds[i % len(kinds)]
            cases: list[int] = []
            if kind == "select/decline":
                case = world.case(big)
                cases = [case]
                reqs = [
                    _advance(case, "select", actor=f"structure:{big}"),
                    _advance(
                        case, "decline", "--set", "reason=le candidat a trouvé un autre poste", actor=f"structure:{big}"
                    ),
                ]
                events = [(case, "select"), (case, "decline")]
            elif kind == "select/select":
                case = world.case(big)
                cases = [case]
                reqs = [_advance(case, "select")] * 2
                events = [(case, "select")] * 2
            elif kind == "present twice":
                candidate = world.candidate()
                reqs = [
                    [
                        "present",
                        "--structure",
                        str(big),
                        "--candidate",
                        str(candidate),
                        "--at",
                        "2026-03-06T10:00",
                        "--json",
                    ]
                ] * 2
                events = []
            elif kind == "sign one post":
                one = world.structure(posts=1)
                cases = [world.case(one, "contacted"), world.case(one, "contacted")]
                reqs = [_advance(c, "sign_contract", *CONTRACT_SETS) for c in cases]
                events = [(c, "sign_contract") for c in cases]
            elif kind == "sign one candidate":
                candidate = world.candidate()
                cases = [world.case(world.structure(posts=3), "contacted", candidate) for _ in range(2)]
                reqs = [_advance(c, "sign_contract", *CONTRACT_SETS) for c in cases]
                events = [(c, "sign_contract") for c in cases]
            else:  # an operator cancels while the structure signs
                case = world.case(big, "contacted")
                cases = [case]
                reqs = [
                    _advance(case, "cancel", "--set", "reason=poste supprimé"),
                    _advance(case, "sign_contract", *CONTRACT_SETS),
                ]
                events = [(case, "cancel"), (case, "sign_contract")]
            go = time.time() + 0.03 + rng.random() * 0.01
            a.send({"argv": reqs[0], "go_at": go})
            b.send({"argv": reqs[1], "go_at": go + rng.choice((0.0, 0.0005, 0.002))})
            answers = [a.receive(), b.receive()]
            for n, answer in enumerate(answers):
                judge_answer(row, answer, f"{kind} {'ab'[n]}")
                if kind == "present twice":
                    made = _present_case(answer)
                    if made:
                        cases.append(made)
                        acks.append(Ack(made, "present"))
                else:
                    acks += acked(answer, *events[n])
            won = sum(answer["code"] == 0 for answer in answers)
            row.notes[f"{won} of 2 won"] += 1
            row.tried += 1
            row.checked(engine, [k for k in acks if k.case in cases], cases)
        a.close(row)
        b.close(row)
        for i in range(processes):
            if over(row):
                break
            what = ("advance", "sweep", "pay")[i % 3]
            if what == "advance":
                case = world.case(big)
                cases = [case]
                argvs = [_advance(case, "select"), _advance(case, "withdraw", "--set", "reason=déménagement")]
                events = [(case, "select"), (case, "withdraw")]
            elif what == "sweep":
                expected = world.due_cases(6)
                cases = list(expected)
                argvs = [["sweep", "--at", SWEEP_AT, "--json"]] * 2
                events = []
            else:
                cases = world.in_post_cases(2)
                argvs = [["pay", "--at", PAY_AT, "--json"]] * 2
                events = []
            procs = [
                subprocess.Popen(
                    [str(CONUM), *argv, "--db", url],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                    cwd=folder,
                )
                for argv in argvs
            ]
            for n, proc in enumerate(procs):
                out, err = proc.communicate(timeout=300)
                row.judge(proc.returncode, out, err, who=f"conum {what}")
                if events and proc.returncode == 0:
                    acks.append(Ack(*events[n]))
            if what == "sweep":
                acks += [Ack(c, e) for c, e in expected.items()]
            elif what == "pay":
                acks += [Ack(c, "pay_tranche") for c in cases]
            row.tried += 1
            row.checked(engine, [k for k in acks if k.case in cases], cases)
        row.finish(url, engine, acks)
    row.seconds = time.monotonic() - started
    return row


# ---------------------------------------------------------------- kills


def _kill_after(proc: subprocess.Popen[str], delay: float) -> bool:
    """SIGKILL ``proc`` (and its process group) after ``delay`` seconds; True if it was still running."""
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        pass
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def _drain(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """What a process that is over printed."""
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    return out, err


def _start(argv: list[str], env: dict[str, str], folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=folder,
        start_new_session=True,
    )


def _survivors(session: int) -> list[int]:
    """The processes still alive in the session ``session`` (what a killed command left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session and fields[0] != "Z":  # the session id; zombies are dead
                found.append(int(entry.name))
    return found


def kills(
    backend: str,
    counts: dict[str, int],
    seed: int = 1,
    processes_every: int = 8,
    simulate_to_end: bool = True,
    simulate_window: tuple[float, float] = (3.0, 25.0),
) -> Row:
    """SIGKILL the sweep, the payment run, the delivery and ``conum simulate`` at random moments,
    ``counts[what]`` times each, then run them again to the end and check that each due step, tranche
    and notification happened exactly once, and nothing half-written was left.

    The victims are worker processes that have already imported everything and run the command when
    told to (so that the kill falls within the work, not within the imports), and one trial in
    ``processes_every`` kills a ``conum sweep`` or ``conum pay`` process from its start."""
    rng = random.Random(seed)
    row, started = Row("kills", backend), time.monotonic()
    with database(backend, "kills") as (url, folder):
        engine, acks = get_engine(url), []
        world, env = World(engine), environment(url, folder)
        #: how long the last whole runs took (runs the kill did not stop): the kills fall anywhere within
        #: the median of them, so that most land while the work runs, whatever the machine's speed
        lasts: dict[str, list[float]] = {}
        pool = [_ready(env, folder), _ready(env, folder)]  # the next victim, and the one after, warming
        for what, n in counts.items():
            for trial in range(n):
                if over(row):
                    break
                if what == "simulate":
                    _kill_simulate(row, rng, env, backend, simulate_to_end and trial == n - 1, simulate_window)
                    continue
                if what == "sweep":
                    expected = world.due_cases(rng.choice((30, 60, 90)))
                    request: dict[str, Any] = {"argv": ["sweep", "--at", SWEEP_AT, "--json"]}
                    trial_acks = [Ack(c, e) for c, e in expected.items()]
                    cases = list(expected)
                elif what == "pay":
                    cases = world.in_post_cases(rng.choice((5, 10, 15)))
                    request = {"argv": ["pay", "--at", PAY_AT, "--json"]}
                    trial_acks = [Ack(c, "pay_tranche") for c in cases]
                else:  # new cases queue notifications, a delivery is killed, the next one sends them all
                    structure = world.structure()
                    cases = [world.case(structure, "selected") for _ in range(rng.choice((5, 10, 20)))]
                    request, trial_acks = {"deliver": "2026-03-06T10:00"}, []
                recent = sorted(lasts.get(what, [])[-7:])
                delay = rng.uniform(0.0, 1.0) * (recent[len(recent) // 2] if recent else 0.5)
                if what != "delivery" and trial % processes_every == processes_every - 1:
                    proc = _start([str(CONUM), *request["argv"], "--db", url], env, folder)
                    assert proc.stdin is not None
                    proc.stdin.close()
                    killed = _kill_after(proc, 1.0 + delay)  # a process starts in about a second here
                    out, err = _drain(proc)
                    row.judge(0 if killed else proc.returncode, "" if killed else out, err, who=f"conum {what}")
                    row.notes["conum processes killed" if killed else "conum processes done before the kill"] += 1
                else:
                    victim = pool.pop(0)
                    victim.ready()
                    begun = time.monotonic()
                    victim.send(request)
                    assert victim.proc.stdout is not None
                    killed = not select.select([victim.proc.stdout], [], [], delay)[0]
                    if killed:
                        os.killpg(victim.proc.pid, signal.SIGKILL)
                    else:
                        judge_answer(row, victim.receive(), what)
                        lasts.setdefault(what, []).append(time.monotonic() - begun)
                    row.notes["killed while running" if killed else "done before the kill"] += 1
                    victim.close(row, killed=killed)
                    pool.append(_ready(env, folder))
                # the restart: the same run again, to the end (the delivery once the lease is over)
                again = {"deliver": "2026-03-06T10:30"} if what == "delivery" else request
                pool[0].ready()
                judge_answer(row, pool[0].ask(again), f"{what} (again)")
                if what == "delivery":
                    _check_delivery(row, engine, folder, cases)
                acks += trial_acks
                row.tried += 1
                row.checked(engine, trial_acks, cases)
        for worker in pool:
            worker.close(row)
        row.finish(url, engine, acks)
    row.seconds = time.monotonic() - started
    return row


def _ready(env: dict[str, str], folder: Path) -> Worker:
    """A worker that has imported what the commands need (it answers once ready)."""
    worker = Worker(env, folder)
    worker.send({"ping": True})
    worker.pending = True
    return worker


def _check_delivery(row: Row, engine: Engine, folder: Path, cases: list[int]) -> None:
    """Every notification of ``cases`` sent, and written once (one file per outbox row)."""
    with engine.connect() as con:
        rows = con.execute(
            text("SELECT id, status, attempts FROM outbox WHERE case_id IN ({})".format(",".join(map(str, cases))))
        ).all()
    files = Counter(p.name.split("-")[1] for p in (folder / "mail").glob("outbox-*.eml"))
    for outbox_id, status, attempts in rows:
        if status != "sent":
            row.lost.add(f"outbox row {outbox_id}: {status} after the delivery ran again")
        elif files[f"{outbox_id:08d}"] != 1:
            row.lost.add(f"outbox row {outbox_id}: sent, {files[f'{outbox_id:08d}']} file(s)")
        if attempts > 1:
            row.notes["notifications sent again after a kill (same file)"] += 1


def _kill_simulate(
    row: Row, rng: random.Random, env: dict[str, str], backend: str, to_end: bool, window: tuple[float, float]
) -> None:
    """Kill ``conum simulate`` at a random moment: no process of it may survive, and its database holds
    nothing half-written. Then it starts again on a new database; with ``to_end`` that run goes to its
    end and its reconciliation must be right (a whole run takes minutes here: the campaign lets only
    the last one of each backend finish; the others are the next trial's start)."""
    with database(backend, "sim") as (url, folder):
        if backend == "sqlite":  # the simulation wants a new file
            get_engine(url).dispose()
            url = f"sqlite:///{folder / 'simulation.db'}"
        argv = [
            str(CONUM),
            "simulate",
            "--posts",
            "12",
            "--seed",
            str(rng.randrange(100)),
            "--report",
            str(folder / "report.html"),
            "--db",
            url,
            "--json",
        ]
        proc = _start(argv, env, folder)
        assert proc.stdin is not None
        proc.stdin.close()
        killed = _kill_after(proc, rng.uniform(*window))
        out, err = _drain(proc)
        row.judge(0 if killed else proc.returncode, "" if killed else out, err, who="simulate")
        row.notes["simulate killed" if killed else "simulate done before the kill"] += 1
        deadline = time.monotonic() + 5
        while _survivors(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _survivors(proc.pid)
        if left:
            row.half.add(f"simulate killed: {len(left)} process(es) left behind ({left})")
            for pid in left:
                os.kill(pid, signal.SIGKILL)
        if backend == "postgresql" or (folder / "simulation.db").exists():
            engine = get_engine(url)
            row.checked(engine)
            engine.dispose()
        row.tried += 1
    if not to_end:
        return
    with database(backend, "sim") as (url, folder):
        if backend == "sqlite":
            url = f"sqlite:///{folder / 'again.db'}"
        argv = [
            str(CONUM),
            "simulate",
            "--posts",
            "12",
            "--seed",
            "3",
            "--report",
            str(folder / "again.html"),
            "--db",
            url,
            "--json",
        ]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=folder, timeout=900)
        row.judge(done.returncode, "", done.stderr, who="simulate (again)")
        row.notes["simulate run again to its end"] += 1
        if done.returncode != 0:
            row.half.add(f"simulate run again: exit {done.returncode}: {done.stderr.strip()[-300:]}")


# ---------------------------------------------------------------- injected faults

FAULTS = ("drop", "lock", "commit")


def faults(backend: str, count: int, seed: int = 1) -> Row:
    """``count`` database faults injected into a worker process during transitions, presentations,
    sweeps, payment runs and deliveries; after each, the same command again (it must then succeed, or be
    refused because the first one did commit), and the invariants on the trial's cases."""
    rng = random.Random(seed)
    row, started = Row("faults", backend), time.monotonic()
    with database(backend, "faults") as (url, folder):
        engine, acks = get_engine(url), []
        world = World(engine)
        worker = Worker(environment(url, folder, faults=True), folder)
        big = world.structure(posts=10**6)
        statements: dict[str, int] = {}
        ops: list[Callable[[], tuple[str, dict[str, Any], list[int], list[Ack]]]] = [
            lambda: _op_advance(world, big, "select", "presented", []),
            lambda: _op_advance(world, big, "sign_contract", "contacted", CONTRACT_SETS),
            lambda: _op_advance(world, big, "cancel", "selected", ["--set", "reason=poste gelé"]),
            lambda: _op_present(world, big),
            lambda: _op_sweep(world),
            lambda: _op_pay(world),
            lambda: _op_deliver(world, big),
        ]
        i = 0
        while row.tried < count and not over(row):
            name, request, cases, trial_acks = ops[i % len(ops)]()
            i += 1
            kind = FAULTS[i % len(FAULTS)]
            top = statements.get(name, 12)
            at = 1 if kind == "commit" else rng.randint(1, top)
            answer = worker.ask({**request, "fault": {"kind": kind, "at": at}})
            statements[name] = max(top, answer["statements"])
            judge_answer(row, answer, f"{name} with {kind}")
            if not answer["fired"]:
                continue  # the command ran fewer statements than the fault's position: no fault, not counted
            row.tried += 1
            row.notes[f"{kind}: exit {answer['code']}"] += 1
            first_ok = answer["code"] == 0
            later = {"deliver": "2026-03-06T10:30"} if "deliver" in request else request
            again = worker.ask(later)  # the restart, without a fault (a delivery once the lease is over)
            judge_answer(row, again, f"{name} again")
            if again["code"] != 0 and not (first_ok or "deliver" in request):
                row.notes[f"{name}: refused after the fault ({again['err'].strip()[:80]})"] += 1
            if name == "present":
                made = _present_case(answer) or _present_case(again)
                if made:
                    cases, trial_acks = [made], [Ack(made, "present")]
            elif name.startswith("advance"):
                trial_acks = trial_acks if (first_ok or again["code"] == 0) else []
            acks += trial_acks
            row.checked(engine, trial_acks, cases)
            if "deliver" in request:
                _check_delivery(row, engine, folder, cases)
        worker.close(row)
        row.finish(url, engine, acks)
    row.seconds = time.monotonic() - started
    return row


def _op_advance(
    world: World, structure: int, event: str, stage: str, sets: list[str]
) -> tuple[str, dict[str, Any], list[int], list[Ack]]:
    case = world.case(structure, stage)
    return f"advance {event}", {"argv": _advance(case, event, *sets)}, [case], [Ack(case, event)]


def _op_present(world: World, structure: int) -> tuple[str, dict[str, Any], list[int], list[Ack]]:
    candidate = world.candidate()
    argv = ["present", "--structure", str(structure), "--candidate", str(candidate), "--at", "2026-03-06T10:00"]
    return "present", {"argv": [*argv, "--json"]}, [], []


def _op_sweep(world: World) -> tuple[str, dict[str, Any], list[int], list[Ack]]:
    expected = world.due_cases(6)
    acks = [Ack(c, e) for c, e in expected.items()]
    return "sweep", {"argv": ["sweep", "--at", SWEEP_AT, "--json"]}, list(expected), acks


def _op_pay(world: World) -> tuple[str, dict[str, Any], list[int], list[Ack]]:
    cases = world.in_post_cases(2)
    return "pay", {"argv": ["pay", "--at", PAY_AT, "--json"]}, cases, [Ack(c, "pay_tranche") for c in cases]


def _op_deliver(world: World, structure: int) -> tuple[str, dict[str, Any], list[int], list[Ack]]:
    cases = [world.case(structure, "selected") for _ in range(3)]
    return "deliver", {"deliver": "2026-03-06T10:00"}, cases, []
