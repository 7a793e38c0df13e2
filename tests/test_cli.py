"""The ``conum`` command contract, as other tools drive it.

The main path runs the installed ``conum`` script as a real process on a
temporary SQLite file; the many side paths and refusals run the same Typer
application in-process (``typer.testing.CliRunner``), which is much faster and
checks the same contract: one JSON object on stdout with ``--json``, and for a
refusal a non-zero exit, nothing on stdout, one message on stderr and a
database whose content is unchanged.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from typer.testing import CliRunner

from states.cli import app
from states.policy import Policy

CONUM = Path(sys.executable).with_name("conum")
PARIS = ZoneInfo("Europe/Paris")
POLICY = Policy()

SHOW_KEYS = {
    "id",
    "state",
    "structure_id",
    "candidate_id",
    "version",
    "escalation_level",
    "deadline_at",
    "due_at",
    "subsidy_cents",
    "recovery_cents",
    "tranches",
    "history",
}
LIST_KEYS = {"id", "state", "structure_id", "candidate_id", "escalation_level", "deadline_at", "due_at"}
TRANCHE_KEYS = {"number", "amount_cents", "due_on", "status", "paid_at"}
HISTORY_KEYS = {"event", "from", "to", "actor", "at", "data"}
SWEEP_KEYS = {"reminded", "escalated", "timed_out"}

# exit codes of a refusal (README, "The conum command")
RULE, BAD_INPUT, NOT_FOUND = 1, 2, 4


def paris(text: str) -> datetime:
    """A wall-clock instant in Paris."""
    return datetime.fromisoformat(text).replace(tzinfo=PARIS)


def instant(text: str | None) -> datetime:
    """Parse an instant the command printed; it must carry its offset."""
    assert text is not None
    value = datetime.fromisoformat(text)
    assert value.utcoffset() is not None, f"{text} has no offset"
    return value


def same_instant(text: str | None, expected: datetime) -> None:
    """The printed instant is ``expected``, shown with the Paris offset of that instant."""
    value = instant(text)
    assert value == expected, (text, expected.isoformat())
    assert value.utcoffset() == expected.astimezone(PARIS).utcoffset(), f"{text} is not shown in Paris time"


def dump(path: Path) -> list[str] | None:
    """The whole content of the SQLite file (schema and rows), or None if there is no file."""
    if not path.exists():
        return None
    con = sqlite3.connect(path)
    try:
        return list(con.iterdump())
    except sqlite3.DatabaseError:  # not a SQLite file: its bytes are its content
        return [path.read_bytes().hex()]
    finally:
        con.close()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


class Conum:
    """Runs ``conum`` on one SQLite file, as a real process or in-process."""

    def __init__(self, path: Path, *, process: bool) -> None:
        self.path, self.process = path, process
        self.url = f"sqlite:///{path}"
        self.runner = CliRunner()

    def run(self, *args: object, db: bool = True) -> Result:
        argv = [str(a) for a in args] + (["--db", self.url] if db else [])
        if self.process:
            env = {k: v for k, v in os.environ.items() if not k.startswith("CONUM_") or k == "CONUM_CLOCK"}
            done = subprocess.run(
                [str(CONUM), *argv], capture_output=True, text=True, env=env, cwd=self.path.parent, timeout=120
            )
            return Result(done.returncode, done.stdout, done.stderr)
        res = self.runner.invoke(app, argv)
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            raise res.exception
        return Result(res.exit_code, res.stdout, res.stderr)

    def ok(self, *args: object) -> Any:
        """Run with ``--json``; the command must succeed and print exactly one JSON object."""
        r = self.run(*args, "--json")
        assert r.code == 0, f"conum {' '.join(map(str, args))} failed ({r.code}): {r.stderr}"
        assert r.stdout.endswith("\n") and r.stdout.count("\n") == 1, r.stdout
        value = json.loads(r.stdout)
        assert isinstance(value, dict)
        return value

    def human(self, *args: object) -> str:
        """Run without ``--json``; the command must succeed and print something that is not JSON."""
        r = self.run(*args)
        assert r.code == 0, r.stderr
        assert r.stdout.strip()
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.stdout)
        return r.stdout

    def refused(self, *args: object, code: int, db: bool = True) -> str:
        """The command is refused: exit ``code``, nothing on stdout, one message on stderr, nothing changed."""
        before = dump(self.path)
        r = self.run(*args, "--json", db=db)
        assert r.code == code, f"exit {r.code}, expected {code}: {r.stdout}{r.stderr}"
        assert r.stdout == ""
        message = r.stderr.strip()
        assert message, "no message on stderr"
        assert "\n" not in message, f"more than one message: {message}"
        assert "Traceback" not in message
        assert dump(self.path) == before, "a refused command changed the database"
        return message


def check_show(view: dict[str, Any]) -> None:
    """A case as ``show`` prints it has the contract's keys, types and offsets."""
    assert view.keys() >= SHOW_KEYS, SHOW_KEYS - view.keys()
    for key in ("id", "structure_id", "candidate_id", "version", "escalation_level", "recovery_cents"):
        assert isinstance(view[key], int), key
    assert view["subsidy_cents"] is None or isinstance(view["subsidy_cents"], int)
    for key in ("deadline_at", "due_at"):
        if view[key] is not None:
            instant(view[key])
    for t in view["tranches"]:
        assert set(t) == TRANCHE_KEYS
        assert isinstance(t["amount_cents"], int)
        if t["due_on"] is not None:
            date.fromisoformat(t["due_on"])
        if t["paid_at"] is not None:
            instant(t["paid_at"])
    assert view["history"], "a case always has its opening in the history"
    for h in view["history"]:
        assert set(h) == HISTORY_KEYS
        instant(h["at"])
        assert isinstance(h["data"], dict)
    assert view["history"][-1]["to"] == view["state"]
    moments = [instant(h["at"]) for h in view["history"]]
    assert moments == sorted(moments), "the history goes back in time"


def steps(view: dict[str, Any]) -> list[tuple[str, str | None, str, str]]:
    return [(h["event"], h["from"], h["to"], h["actor"]) for h in view["history"]]


@pytest.fixture
def env_free(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("CONUM_") and key != "CONUM_CLOCK":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env is read


@pytest.fixture
def cli(tmp_path: Path, env_free: None) -> Conum:
    c = Conum(tmp_path / "conum.db", process=False)
    assert c.ok("init") == {"ok": True}
    return c


@dataclass
class World:
    """Two structures (Gironde with 2 posts, Paris with 1), four candidates and a training organisation."""

    cli: Conum
    s33: int
    s75: int
    people: list[int]
    org: int

    def present(self, structure: int, candidate: int, at: str) -> int:
        view = self.cli.ok("present", "--structure", structure, "--candidate", candidate, "--at", at)
        check_show(view)
        assert self.cli.ok("show", view["id"]) == view  # the new case, as show prints it
        return int(view["id"])

    def advance(self, case: int, event: str, at: str, actor: str = "admin", **data: str) -> dict[str, Any]:
        sets = [x for k, v in data.items() for x in ("--set", f"{k}={v}")]
        view = self.cli.ok("advance", case, event, *sets, "--at", at, "--actor", actor)
        check_show(view)
        assert self.cli.ok("show", case) == view  # the case after the event, as show prints it
        return dict(view)

    def show(self, case: int) -> dict[str, Any]:
        view = self.cli.ok("show", case)
        check_show(view)
        return dict(view)

    def signed(self, candidate: int, start: str = "2026-05-04", end: str = "2028-05-03") -> int:
        """A case of the Gironde structure walked to contract_signed (presented 2026-04-01)."""
        case = self.present(self.s33, candidate, "2026-04-01T10:00")
        self.advance(case, "select", "2026-04-02T10:00")
        self.advance(case, "contact_training_org", "2026-04-03T10:00", org=str(self.org))
        self.advance(case, "sign_contract", "2026-04-20T10:00", type="CDD", start=start, end=end, salary="1900.00")
        return case


@pytest.fixture
def programme(cli: Conum) -> World:
    s33 = cli.ok("structure", "add", "--name", "Médiathèque de Mérignac", "--departement", "33", "--posts", 2)["id"]
    s75 = cli.ok(
        "structure", "add", "--name", "Emmaüs Connect", "--departement", "75", "--posts", 1, "--kind", "private"
    )["id"]
    people = [
        cli.ok("candidate", "add", "--name", f"Candidat {i}", "--email", f"candidat{i}@exemple.fr")["id"]
        for i in range(4)
    ]
    org = cli.ok("training-org", "add", "--name", "Simplon.co")["id"]
    return World(cli, s33, s75, people, org)


# ---------------------------------------------------------------- the main path, as real processes


@pytest.mark.slow
def test_happy_path_to_tranches_paid_as_real_processes(tmp_path: Path, env_free: None) -> None:
    conum = Conum(tmp_path / "conum.db", process=True)
    assert conum.ok("init") == {"ok": True}
    sid = conum.ok("structure", "add", "--name", "Médiathèque de Pessac", "--departement", "33", "--posts", 1)["id"]
    cid = conum.ok("candidate", "add", "--name", "Amina Diallo", "--email", "amina@exemple.fr", "--departement", "33")[
        "id"
    ]
    org = conum.ok("training-org", "add", "--name", "Simplon.co")["id"]
    assert all(isinstance(x, int) for x in (sid, cid, org))
    structure = f"structure:{sid}"

    # presented on 20 March; the clock crosses the switch to summer time on 29 March
    presented = paris("2026-03-20T10:00")
    clock = POLICY.deadlines["presented"]
    view = conum.ok("present", "--structure", sid, "--candidate", cid, "--at", "2026-03-20T10:00")
    check_show(view)
    case = view["id"]
    assert (view["state"], view["structure_id"], view["candidate_id"]) == ("candidate_presented", sid, cid)
    assert (view["escalation_level"], view["tranches"], view["subsidy_cents"]) == (0, [], None)
    same_instant(view["deadline_at"], presented + timedelta(days=clock.deadline_days))
    reminder = presented + timedelta(days=clock.steps[0].days)
    same_instant(view["due_at"], reminder)
    assert steps(view) == [("present", None, "candidate_presented", "admin")]

    # the sweep reminds the structure exactly when the reminder is due
    assert conum.ok("sweep", "--at", reminder.isoformat()) == {"reminded": 1, "escalated": 0, "timed_out": 0}

    # a refused command, as a real process: nothing on stdout, one message, nothing changed
    message = conum.refused("advance", case, "sign_contract", "--at", "2026-03-31T09:00", code=RULE)
    assert "candidate_presented" in message and "select" in message

    selected = paris("2026-03-31T09:00")
    view = conum.ok("advance", case, "select", "--actor", structure, "--at", selected.isoformat())
    assert view["state"] == "selected" and view["escalation_level"] == 0
    assert steps(view)[1] == ("remind", "candidate_presented", "candidate_presented", "system")
    clock = POLICY.deadlines["selected"]
    same_instant(view["deadline_at"], selected + timedelta(days=clock.deadline_days))
    same_instant(view["due_at"], selected + timedelta(days=clock.steps[0].days))

    # at day 15 the préfet escalation supersedes the day-10 reminder: one act, not two
    prefet_step = clock.steps[1]
    assert conum.ok("sweep", "--at", (selected + timedelta(days=prefet_step.days)).isoformat()) == {
        "reminded": 0,
        "escalated": 1,
        "timed_out": 0,
    }

    view = conum.ok(
        "advance", case, "contact_training_org", "--set", f"org={org}", "--actor", structure, "--at", "2026-04-16T10:00"
    )
    assert view["state"] == "training_org_contacted"
    assert view["escalation_level"] == prefet_step.level  # same clock: the level stays
    same_instant(view["due_at"], selected + timedelta(days=clock.steps[2].days))

    view = conum.ok(
        "advance",
        case,
        "sign_contract",
        "--set",
        "type=CDD",
        "--set",
        "start=2026-05-04",
        "--set",
        "end=2028-05-03",
        "--set",
        "salary=1850.00",
        "--actor",
        structure,
        "--at",
        "2026-04-20T10:00",
    )
    check_show(view)
    assert view["state"] == "contract_signed" and view["escalation_level"] == 0
    subsidy = POLICY.subsidy.public_cents  # a 24-month contract of a public structure is funded in full
    assert view["subsidy_cents"] == subsidy
    shares = POLICY.subsidy.tranche_percents
    first, second = subsidy * shares[0] // 100, subsidy * shares[1] // 100
    assert [(t["number"], t["amount_cents"], t["due_on"], t["status"], t["paid_at"]) for t in view["tranches"]] == [
        (1, first, None, "scheduled", None),
        (2, second, "2027-05-04", "scheduled", None),
        (3, subsidy - first - second, "2028-05-03", "scheduled", None),
    ]
    contract_clock = POLICY.deadlines["contract_start"]
    same_instant(view["due_at"], paris("2026-05-04T00:00") + timedelta(days=contract_clock.steps[0].days))

    training = paris("2026-05-04T09:00")
    view = conum.ok("advance", case, "start_training", "--actor", structure, "--at", training.isoformat())
    assert view["state"] == "in_training"
    step = POLICY.deadlines["training_start"].steps[0]
    same_instant(view["due_at"], training + relativedelta(months=step.months, days=step.days))

    view = conum.ok(
        "advance",
        case,
        "complete_training",
        "--set",
        "date=2026-09-01",
        "--actor",
        structure,
        "--at",
        "2026-09-01T17:00",
    )
    assert view["state"] == "in_post"
    assert (view["deadline_at"], view["due_at"]) == (None, None)
    assert view["tranches"][0]["due_on"] == "2026-09-01"

    assert conum.ok("pay", "--at", "2026-09-01T18:00") == {"paid": 1, "amount_cents": first}
    assert conum.ok("pay", "--at", "2027-05-04T08:00") == {"paid": 1, "amount_cents": second}
    assert conum.ok("pay", "--at", "2028-05-03T08:00") == {"paid": 1, "amount_cents": subsidy - first - second}

    view = conum.ok("show", case)
    check_show(view)
    assert view["state"] == "tranches_paid"
    assert (view["deadline_at"], view["due_at"], view["recovery_cents"]) == (None, None, 0)
    assert [t["status"] for t in view["tranches"]] == ["paid"] * 3
    assert sum(t["amount_cents"] for t in view["tranches"]) == subsidy
    same_instant(view["tranches"][0]["paid_at"], paris("2026-09-01T18:00"))
    assert steps(view) == [
        ("present", None, "candidate_presented", "admin"),
        ("remind", "candidate_presented", "candidate_presented", "system"),
        ("select", "candidate_presented", "selected", structure),
        ("escalate", "selected", "selected", "system"),
        ("contact_training_org", "selected", "training_org_contacted", structure),
        ("sign_contract", "training_org_contacted", "contract_signed", structure),
        ("start_training", "contract_signed", "in_training", structure),
        ("complete_training", "in_training", "in_post", structure),
        ("pay_tranche", "in_post", "in_post", "system"),
        ("pay_tranche", "in_post", "in_post", "system"),
        ("pay_final_tranche", "in_post", "tranches_paid", "system"),
    ]
    assert view["history"][5]["data"]["salary_cents"] == 185000  # euros in, cents stored

    listed = conum.ok("list", "--state", "tranches_paid")
    assert set(listed) == {"cases"}
    assert [set(c) for c in listed["cases"]] == [LIST_KEYS]
    assert listed["cases"][0]["id"] == case

    text = conum.human("show", case)
    assert f"Case {case}" in text and "tranches_paid" in text and "Subvention versée" in text


# ---------------------------------------------------------------- side paths


def test_structure_declines_and_candidate_withdraws(programme: World) -> None:
    w = programme
    declined = w.present(w.s33, w.people[0], "2026-03-02T10:00")
    view = w.advance(declined, "decline", "2026-03-05T10:00", actor=f"structure:{w.s33}", reason="profil éloigné")
    assert view["state"] == "declined"
    assert (view["deadline_at"], view["due_at"]) == (None, None)
    assert view["history"][-1]["data"] == {"reason": "profil éloigné"}
    message = w.cli.refused("advance", declined, "select", "--at", "2026-03-06", code=RULE)
    assert "declined" in message and "none" in message

    withdrawn = w.present(w.s75, w.people[1], "2026-03-02T10:00")
    w.advance(withdrawn, "select", "2026-03-03T10:00", actor=f"structure:{w.s75}")
    w.advance(withdrawn, "contact_training_org", "2026-03-04T10:00", org=str(w.org))
    view = w.advance(withdrawn, "withdraw", "2026-03-05T10:00", actor=f"candidate:{w.people[1]}")
    assert view["state"] == "withdrawn"
    assert steps(view)[-1] == ("withdraw", "training_org_contacted", "withdrawn", f"candidate:{w.people[1]}")


def test_presented_case_times_out_and_is_overdue_until_swept(programme: World) -> None:
    w = programme
    case = w.present(w.s33, w.people[0], "2026-03-02T10:00")
    other = w.present(w.s75, w.people[1], "2026-03-07T10:00")
    deadline = instant(w.show(case)["deadline_at"])
    before, after = (deadline - timedelta(minutes=1)).isoformat(), (deadline + timedelta(hours=1)).isoformat()

    assert w.cli.ok("list", "--overdue", "--at", before) == {"cases": []}
    overdue = w.cli.ok("list", "--overdue", "--at", after)["cases"]
    assert [c["id"] for c in overdue] == [case]
    assert set(overdue[0]) == LIST_KEYS

    # the time-out fires once; a second sweep at the same instant has nothing left to do
    counts = w.cli.ok("sweep", "--at", after)
    assert counts == {"reminded": 1, "escalated": 0, "timed_out": 1}  # "other" is at its day-10 reminder
    assert w.cli.ok("sweep", "--at", after) == dict.fromkeys(SWEEP_KEYS, 0)
    view = w.show(case)
    assert view["state"] == "expired"
    assert steps(view)[-1] == ("time_out", "candidate_presented", "expired", "system")
    assert w.show(other)["escalation_level"] == 1
    assert w.cli.ok("list", "--overdue", "--at", after) == {"cases": []}


def test_selected_case_is_reminded_then_escalated_to_prefet_then_anct_then_expires(programme: World) -> None:
    w = programme
    case = w.present(w.s33, w.people[0], "2026-03-02T10:00")
    selected = paris("2026-03-03T10:00")
    w.advance(case, "select", selected.isoformat(), actor=f"structure:{w.s33}")
    expected_counts = {"remind": "reminded", "escalate": "escalated", "time_out": "timed_out"}
    for step in POLICY.deadlines["selected"].steps:
        due = selected + timedelta(days=step.days)
        assert w.cli.ok("sweep", "--at", (due - timedelta(minutes=1)).isoformat()) == dict.fromkeys(SWEEP_KEYS, 0)
        counts = w.cli.ok("sweep", "--at", due.isoformat())
        assert counts == {k: int(k == expected_counts[step.action]) for k in SWEEP_KEYS}
        view = w.show(case)
        assert view["history"][-1]["actor"] == "system"
        if step.action != "time_out":
            assert (view["state"], view["escalation_level"]) == ("selected", step.level)
    assert view["state"] == "expired"
    assert [h["event"] for h in view["history"]] == ["present", "select", "remind", "escalate", "escalate", "time_out"]


def test_contract_and_training_overruns_escalate(programme: World) -> None:
    w = programme
    case = w.signed(w.people[0])
    contract_step = POLICY.deadlines["contract_start"].steps[0]
    late = paris("2026-05-04T00:00") + timedelta(days=contract_step.days)
    assert w.cli.ok("sweep", "--at", late.isoformat())["escalated"] == 1
    view = w.show(case)
    assert (view["state"], view["escalation_level"]) == ("contract_signed", contract_step.level)

    started = paris("2026-06-10T09:00")
    view = w.advance(case, "start_training", started.isoformat(), date="2026-06-10")
    assert view["escalation_level"] == 0
    step = POLICY.deadlines["training_start"].steps[0]
    overrun = paris("2026-06-10T00:00") + relativedelta(months=step.months, days=step.days)
    assert w.cli.ok("sweep", "--at", overrun.isoformat())["escalated"] == 1
    view = w.show(case)
    assert (view["state"], view["escalation_level"]) == ("in_training", step.level)


def test_signing_closes_the_candidates_other_open_cases(programme: World) -> None:
    w = programme
    elsewhere = w.present(w.s75, w.people[0], "2026-03-30T10:00")
    case = w.signed(w.people[0])
    view = w.show(elsewhere)
    assert view["state"] == "withdrawn"
    assert steps(view)[-1] == ("withdraw", "candidate_presented", "withdrawn", "system")
    assert str(case) in view["history"][-1]["data"]["reason"]


def test_prefet_cancels_a_signed_case_and_its_tranches(programme: World) -> None:
    w = programme
    case = w.signed(w.people[0])
    w.cli.refused(
        "advance",
        case,
        "cancel",
        "--set",
        "reason=poste réattribué",
        "--actor",
        "prefet:75",
        "--at",
        "2026-04-25",
        code=RULE,
    )
    view = w.advance(case, "cancel", "2026-04-25T10:00", actor="prefet:33", reason="poste réattribué")
    assert view["state"] == "cancelled"
    assert [t["status"] for t in view["tranches"]] == ["cancelled"] * 3
    assert view["recovery_cents"] == 0
    assert (view["deadline_at"], view["due_at"]) == (None, None)


def test_broken_contract_cancels_unpaid_tranches_and_records_the_amount_to_recover(programme: World) -> None:
    w = programme
    case = w.signed(w.people[0])
    w.advance(case, "start_training", "2026-05-04T09:00")
    w.advance(case, "complete_training", "2026-09-01T10:00", date="2026-09-01")
    paid = w.cli.ok("pay", "--at", "2026-09-01T12:00")
    assert paid["paid"] == 1
    view = w.advance(
        case, "break_contract", "2026-10-05T10:00", actor=f"structure:{w.s33}", reason="demission", date="2026-10-03"
    )
    assert view["state"] == "broken"
    assert [t["status"] for t in view["tranches"]] == ["paid", "cancelled", "cancelled"]
    # 4 May to 3 October: five whole months served out of the 24 funded
    earned = view["subsidy_cents"] * 5 // POLICY.subsidy.funded_months
    assert view["recovery_cents"] == paid["amount_cents"] - earned > 0
    assert w.cli.ok("pay", "--at", "2028-06-01") == {"paid": 0, "amount_cents": 0}


def test_list_filters_by_state_and_departement(programme: World) -> None:
    w = programme
    a = w.present(w.s33, w.people[0], "2026-03-02T10:00")
    b = w.present(w.s75, w.people[1], "2026-03-02T10:00")
    c = w.present(w.s33, w.people[2], "2026-03-02T10:00")
    # --at takes an offset, or a bare date (midnight in Paris)
    view = w.advance(c, "select", "2026-03-03T09:00:00+00:00")
    assert view["history"][-1]["at"] == "2026-03-03T10:00:00+01:00"
    view = w.advance(a, "select", "2026-03-04")
    assert view["history"][-1]["at"] == "2026-03-04T00:00:00+01:00"
    everything = w.cli.ok("list")["cases"]
    assert [x["id"] for x in everything] == [a, b, c]
    assert all(set(x) == LIST_KEYS for x in everything)
    shown = w.show(a)
    assert everything[0] == {k: shown[k] for k in LIST_KEYS}
    assert [x["id"] for x in w.cli.ok("list", "--departement", "33")["cases"]] == [a, c]
    assert [x["id"] for x in w.cli.ok("list", "--state", "candidate_presented")["cases"]] == [b]
    assert [x["id"] for x in w.cli.ok("list", "--state", "selected", "--departement", "33")["cases"]] == [a, c]
    assert w.cli.ok("list", "--state", "selected", "--departement", "75") == {"cases": []}


def test_events_lists_the_table_and_the_events_allowed_from_a_state(cli: Conum) -> None:
    table = cli.ok("events")
    assert set(table) == {"events"}
    assert all(set(r) == {"event", "from", "to", "who", "guards", "fields", "told"} for r in table["events"])
    [select] = [r for r in table["events"] if r["event"] == "select"]
    assert (select["from"], select["to"], select["who"], select["fields"]) == (
        "candidate_presented",
        "selected",
        ["structure", "admin"],
        [],
    )
    assert select["told"] == ["candidate: selected", "structure: selected"]  # the notification matrix
    selected = cli.ok("events", "selected")["events"]
    assert selected and all(r["from"] == "selected" for r in selected)
    assert {r["event"] for r in selected} >= {"decline", "withdraw", "contact_training_org", "cancel", "time_out"}
    assert "select" not in {r["event"] for r in selected}
    assert cli.ok("events", "tranches_paid") == {"events": []}


def test_events_lists_each_events_fields_with_their_types(cli: Conum) -> None:
    rows = {r["event"]: r for r in cli.ok("events", "training_org_contacted")["events"]}
    fields = {f["name"]: f for f in rows["sign_contract"]["fields"]}
    assert {k: (f["type"], f["required"]) for k, f in fields.items()} == {
        "type": ("string", True),
        "start": ("date", True),
        "salary": ("amount", True),
        "end": ("date", False),
    }
    assert fields["type"]["choices"] == ["CDI", "CDD", "PEC", "contrat_de_projet"]
    assert fields["salary"]["title"] == "Salaire brut mensuel (€)"
    assert "salary_at_least_smic" in rows["sign_contract"]["guards"]
    assert [(f["name"], f["required"]) for f in rows["withdraw"]["fields"]] == [("reason", False)]


def test_every_command_has_a_human_output(programme: World) -> None:
    w = programme
    case = w.present(w.s33, w.people[0], "2026-03-02T10:00")
    assert "select" in w.cli.human("events", "candidate_presented")
    assert "candidate_presented" in w.cli.human("show", case)
    assert "1 case(s)" in w.cli.human("list")
    assert w.cli.human("sweep", "--at", "2026-03-12T10:00")
    assert w.cli.human("pay", "--at", "2026-03-12T10:00")
    assert w.cli.human("structure", "add", "--name", "Mairie", "--departement", "2A", "--posts", 1)
    assert w.cli.human("advance", case, "select", "--at", "2026-03-13T10:00")


# ---------------------------------------------------------------- refusals


def test_refusals_of_who_acts_and_of_the_lifecycle(programme: World) -> None:
    w = programme
    case = w.present(w.s33, w.people[0], "2026-03-02T10:00")
    at = ("--at", "2026-03-03T10:00")

    for actor in ("root", "structure:", "structure:abc", "candidate:-1", "prefet:7", "Admin", "system:1"):
        message = w.cli.refused("advance", case, "select", *at, "--actor", actor, code=BAD_INPUT)
        assert "actor" in message and "structure:<id>" in message

    message = w.cli.refused("advance", case, "promote", *at, code=RULE)
    assert "unknown event" in message and "candidate_presented" in message
    message = w.cli.refused("advance", case, "sign_contract", *at, code=RULE)
    assert "'candidate_presented'" in message
    assert "select, decline, withdraw, cancel" in message  # the events allowed from it, in table order
    message = w.cli.refused("advance", case, "remind", *at, "--actor", "system", code=RULE)
    assert "sweep" in message

    message = w.cli.refused("advance", case, "select", *at, "--actor", f"structure:{w.s75}", code=RULE)
    assert "own cases" in message and f"structure:{w.s33}" in message
    message = w.cli.refused("advance", case, "withdraw", *at, "--actor", f"candidate:{w.people[1]}", code=RULE)
    assert "own cases" in message
    message = w.cli.refused("advance", case, "cancel", "--set", "reason=x", *at, "--actor", "prefet:75", code=RULE)
    assert "département 33" in message
    message = w.cli.refused(
        "advance", case, "cancel", "--set", "reason=x", *at, "--actor", f"structure:{w.s33}", code=RULE
    )
    assert "prefet, admin" in message
    message = w.cli.refused("advance", case, "select", *at, "--actor", f"candidate:{w.people[0]}", code=RULE)
    assert "structure, admin" in message
    w.cli.refused("sweep", "--actor", "admin", code=RULE)
    w.cli.refused("pay", "--actor", f"structure:{w.s33}", code=RULE)
    w.cli.refused(
        "present", "--structure", w.s33, "--candidate", w.people[1], "--actor", f"structure:{w.s33}", code=RULE
    )

    message = w.cli.refused("advance", case, "select", "--at", "2026-03-02T09:59", code=RULE)
    assert "back in time" in message and "2026-03-02T10:00:00+01:00" in message

    message = w.cli.refused("advance", 999, "select", *at, code=NOT_FOUND)
    assert "999" in message and "conum list" in message
    w.cli.refused("show", 999, code=NOT_FOUND)
    assert w.show(case)["version"] == 1


def test_refusals_of_bad_input(programme: World) -> None:
    w = programme
    case = w.present(w.s33, w.people[0], "2026-03-02T10:00")
    for bad in ("tomorrow", "2026-13-01", "2026-02-30T10:00", "03/03/2026", "2026-03-03T25:00"):
        message = w.cli.refused("advance", case, "select", "--at", bad, code=BAD_INPUT)
        assert "ISO 8601" in message and bad in message
        w.cli.refused("show", case, "--at", bad, code=BAD_INPUT)
        w.cli.refused("list", "--at", bad, code=BAD_INPUT)
        w.cli.refused("sweep", "--at", bad, code=BAD_INPUT)
        w.cli.refused("pay", "--at", bad, code=BAD_INPUT)
        w.cli.refused("present", "--structure", w.s33, "--candidate", w.people[1], "--at", bad, code=BAD_INPUT)

    at = ("--at", "2026-03-03T10:00")
    message = w.cli.refused("advance", case, "decline", *at, code=BAD_INPUT)
    assert "--set reason=" in message
    message = w.cli.refused("advance", case, "decline", "--set", "reason", *at, code=BAD_INPUT)
    assert "KEY=VALUE" in message
    message = w.cli.refused("advance", case, "decline", "--set", "=non", *at, code=BAD_INPUT)
    assert "KEY=VALUE" in message
    message = w.cli.refused("advance", case, "decline", "--set", "reason=a", "--set", "reason=b", *at, code=BAD_INPUT)
    assert "twice" in message
    message = w.cli.refused("advance", case, "decline", "--set", "reason=x", "--set", "colour=red", *at, code=BAD_INPUT)
    assert "colour" in message and "reason" in message
    message = w.cli.refused("advance", case, "decline", "--set", "reason=  ", *at, code=BAD_INPUT)
    assert "empty" in message

    w.cli.refused("list", "--state", "hired", code=BAD_INPUT)
    w.cli.refused("events", "hired", code=BAD_INPUT)
    w.cli.refused("structure", "add", "--name", "X", "--departement", "96", "--posts", 1, code=BAD_INPUT)
    w.cli.refused("structure", "add", "--name", "X", "--departement", "33", "--posts", 0, code=BAD_INPUT)
    w.cli.refused(
        "structure", "add", "--name", "X", "--departement", "33", "--posts", 1, "--kind", "state", code=BAD_INPUT
    )
    w.cli.refused("structure", "add", "--name", " ", "--departement", "33", "--posts", 1, code=BAD_INPUT)
    w.cli.refused(
        "structure", "add", "--name", "X", "--departement", "33", "--posts", 1, "--at", "soon", code=BAD_INPUT
    )
    w.cli.refused("candidate", "add", "--name", "X", "--email", "x@exemple.fr", "--at", "soon", code=BAD_INPUT)
    w.cli.refused("training-org", "add", "--name", "X", "--at", "soon", code=BAD_INPUT)
    w.cli.refused("init", "--at", "soon", code=BAD_INPUT)
    w.cli.refused("candidate", "add", "--name", "X", "--email", "not-an-address", code=BAD_INPUT)
    w.cli.refused("candidate", "add", "--name", "X", "--email", "x@exemple.fr", "--departement", "99", code=BAD_INPUT)
    w.cli.refused("training-org", "add", "--name", "", code=BAD_INPUT)
    w.cli.refused("present", "--structure", 999, "--candidate", w.people[1], code=NOT_FOUND)
    w.cli.refused("present", "--structure", w.s33, "--candidate", 999, code=NOT_FOUND)
    message = w.cli.refused("present", "--structure", w.s33, "--candidate", w.people[0], code=RULE)
    assert str(case) in message


def test_refusals_at_contract_signing(programme: World) -> None:
    w = programme
    case = w.present(w.s75, w.people[0], "2026-03-02T10:00")
    w.advance(case, "select", "2026-03-03T10:00")
    at = ("--at", "2026-03-05T10:00")
    message = w.cli.refused("advance", case, "contact_training_org", "--set", "org=99", *at, code=RULE)
    assert "training-org add" in message
    w.cli.refused("advance", case, "contact_training_org", "--set", "org=Simplon", *at, code=BAD_INPUT)
    w.advance(case, "contact_training_org", "2026-03-04T10:00", org=str(w.org))

    def sign(*sets: str, code: int) -> str:
        args = [x for s in sets for x in ("--set", s)]
        return w.cli.refused("advance", case, "sign_contract", *args, *at, code=code)

    full = {"type": "CDD", "start": "2026-04-01", "end": "2028-03-31", "salary": "1900.00"}

    def variant(**change: str | None) -> list[str]:
        data = {**full, **change}
        return [f"{k}={v}" for k, v in data.items() if v is not None]

    smic = POLICY.smic_on(date(2026, 4, 1))
    assert smic is not None
    below = f"{(smic.monthly_cents - 1) / 100:.2f}"
    message = sign(*variant(salary=below), code=RULE)
    assert "SMIC" in message and below in message
    message = sign(*variant(salary=None), code=BAD_INPUT)
    assert "--set salary=" in message
    for bad in ("2026-02-30", "01/04/2026", "2026-4-1x"):
        message = sign(*variant(start=bad), code=BAD_INPUT)
        assert "YYYY-MM-DD" in message
    for bad in ("abc", "-1900", "1900.005", "0"):
        message = sign(*variant(salary=bad), code=BAD_INPUT)
        assert "1850.00" in message or "euros" in message
    assert "end date" in sign(*variant(end=None), code=RULE)
    assert "after its start" in sign(*variant(end="2026-03-31"), code=RULE)
    assert "CDI" in sign(*variant(type="interim"), code=RULE)
    assert "no end date" in sign(*variant(type="CDI"), code=RULE)

    # the Paris structure has one post: a second contract exceeds its quota
    w.advance(case, "sign_contract", "2026-03-05T10:00", **full)
    second = w.present(w.s75, w.people[1], "2026-03-05T10:00")
    w.advance(second, "select", "2026-03-05T11:00")
    w.advance(second, "contact_training_org", "2026-03-05T12:00", org=str(w.org))
    message = w.cli.refused(
        "advance", second, "sign_contract", *[f"--set={x}" for x in variant()], "--at", "2026-03-06", code=RULE
    )
    assert "quota" in message


def test_an_uninitialised_database_is_refused_and_left_alone(tmp_path: Path, env_free: None) -> None:
    missing = Conum(tmp_path / "missing.db", process=False)
    for args in (
        ("show", 1),
        ("list",),
        ("advance", 1, "select"),
        ("sweep",),
        ("pay",),
        ("present", "--structure", 1, "--candidate", 1),
        ("structure", "add", "--name", "X", "--departement", "33", "--posts", 1),
    ):
        message = missing.refused(*args, code=NOT_FOUND)
        assert "conum init" in message
    assert not missing.path.exists()

    empty = Conum(tmp_path / "empty.db", process=False)
    empty.path.touch()
    for args in (("show", 1), ("list",), ("advance", 1, "select"), ("sweep",)):
        assert "conum init" in empty.refused(*args, code=NOT_FOUND)

    notdb = Conum(tmp_path / "notes.txt", process=False)
    notdb.path.write_text("not a database\n")
    assert "conum init" in notdb.refused("list", code=BAD_INPUT)
    assert notdb.path.read_text() == "not a database\n"

    message = missing.refused("list", "--db", "conum.db", db=False, code=BAD_INPUT)
    assert "sqlite:///" in message


def test_a_refused_command_leaves_an_empty_file_empty(tmp_path: Path, env_free: None) -> None:
    empty = Conum(tmp_path / "empty.db", process=False)
    empty.path.touch()
    empty.refused("list", code=NOT_FOUND)
    assert empty.path.read_bytes() == b""


def test_human_list_shows_whole_states_and_deadlines(programme: World) -> None:
    case = programme.present(programme.s33, programme.people[0], "2026-03-02T10:00")
    deadline = programme.show(case)["deadline_at"]
    text = programme.cli.human("list")
    assert "candidate_presented" in text and deadline in text


def test_events_refuses_a_malformed_at(cli: Conum) -> None:
    cli.refused("events", "--at", "tomorrow", code=BAD_INPUT)


def test_json_output_is_one_object_even_for_many_cases(programme: World) -> None:
    w = programme
    for person in w.people:
        w.present(w.s33, person, "2026-03-02T10:00")
    r = w.cli.run("list", "--json")
    assert r.code == 0 and r.stdout.count("\n") == 1
    assert len(json.loads(r.stdout)["cases"]) == len(w.people)


def test_a_non_finite_salary_is_bad_input(programme: World) -> None:
    case = programme.present(programme.s33, programme.people[0], "2026-03-02T10:00")
    programme.advance(case, "select", "2026-03-03T10:00")
    programme.advance(case, "contact_training_org", "2026-03-04T10:00", org=str(programme.org))
    for salary in ("NaN", "Infinity"):
        programme.cli.refused(
            "advance",
            case,
            "sign_contract",
            "--set",
            "type=CDI",
            "--set",
            "start=2026-04-01",
            "--set",
            f"salary={salary}",
            "--at",
            "2026-03-05",
            code=BAD_INPUT,
        )


def test_an_instant_out_of_range_is_bad_input(programme: World) -> None:
    for when in ("9999-12-31T23:00", "0001-01-01T00:00"):
        programme.cli.refused(
            "present", "--structure", programme.s33, "--candidate", programme.people[0], "--at", when, code=BAD_INPUT
        )


def test_an_id_out_of_range_is_refused(programme: World) -> None:
    huge = 2**64
    programme.cli.refused("show", huge, code=BAD_INPUT)
    programme.cli.refused("advance", huge, "select", code=BAD_INPUT)
    programme.cli.refused("structure", "add", "--name", "X", "--departement", "33", "--posts", huge, code=BAD_INPUT)
