"""What a careless or hostile user tries, through the real ``conum`` process: nothing bends, nothing crashes.

Each refusal is one line on stderr that says what to do, with the right exit code, nothing on stdout
and the database unchanged; user text is printed as it was typed, never read as markup.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CONUM = Path(sys.executable).with_name("conum")
RULE, BAD_INPUT, CONFLICT, NOT_FOUND = 1, 2, 3, 4


class Shell:
    """Runs ``conum`` as a real process on one SQLite file; ``real_clock`` drops ``CONUM_CLOCK``."""

    def __init__(self, folder: Path, real_clock: bool = False) -> None:
        self.folder, self.url = folder, f"sqlite:///{folder / 'conum.db'}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CONUM_")}
        if not real_clock:
            self.env["CONUM_CLOCK"] = "simulated"
        self.env["CONUM_MAIL_DIR"] = str(folder / "mail")

    def run(self, *args: object) -> subprocess.CompletedProcess[bytes]:
        argv = [os.fsencode(a) if isinstance(a, str) else a for a in args]
        return subprocess.run([CONUM, *argv, b"--db", self.url], capture_output=True, env=self.env, timeout=120)

    def ok(self, *args: object) -> Any:
        done = self.run(*args, "--json")
        assert done.returncode == 0, done.stderr.decode()
        return json.loads(done.stdout)

    def refused(self, *args: object, code: int) -> str:
        before = self.dump()
        done = self.run(*args)
        err = done.stderr.decode("utf-8", "replace")
        assert done.returncode == code, (done.returncode, err)
        assert done.stdout == b"", done.stdout
        assert err.count("\n") == 1 and err.startswith("refused: "), err
        assert "Traceback" not in err
        assert self.dump() == before
        return err

    def dump(self) -> list[tuple[Any, ...]]:
        con = sqlite3.connect(self.folder / "conum.db")
        try:
            names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            return [(n, *row) for n in names for row in con.execute(f'SELECT * FROM "{n}" ORDER BY rowid')]
        finally:
            con.close()


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    sh = Shell(tmp_path)
    sh.ok("init")
    sh.ok("structure", "add", "--name", "Médiathèque [bold]de[/bold] Blaye", "--departement", "33", "--posts", "1")
    sh.ok("candidate", "add", "--name", "Amina [/note] Diallo", "--email", "amina@exemple.fr")
    sh.ok("training-org", "add", "--name", "Simplon.co")
    sh.ok("present", "--structure", "1", "--candidate", "1", "--at", "2026-03-02T10:00")
    return sh


def test_no_person_acts_as_system_from_the_command_line(shell: Shell) -> None:
    for args in (
        ("advance", "1", "select", "--actor", "system"),
        ("advance", "1", "withdraw", "--actor", "system"),
        ("present", "--structure", "1", "--candidate", "1", "--actor", "system"),
    ):
        assert "actor_may_fire" in shell.refused(*args, "--at", "2026-03-03T10:00", code=RULE)


def test_time_out_is_never_fired_by_hand(shell: Shell) -> None:
    for actor in ("system", "admin"):
        message = shell.refused("advance", "1", "time_out", "--actor", actor, "--at", "2026-03-03T10:00", code=RULE)
        assert "sweep" in message or "system" in message


def test_markup_in_a_reason_is_printed_as_typed(shell: Shell) -> None:
    reason = "[/note] [bold red]refusé[/] {0} %s"
    done = shell.run("advance", "1", "decline", "--set", f"reason={reason}", "--at", "2026-03-03T10:00")
    assert done.returncode == 0, done.stderr.decode()
    shown = shell.run("show", "1")
    assert shown.returncode == 0, shown.stderr.decode()
    text = shown.stdout.decode()
    assert "[/note]" in text and "[bold red]refusé[/]" in text and "{0} %s" in text
    assert shell.ok("show", "1")["history"][-1]["data"]["reason"] == reason


def test_a_newline_in_the_input_is_echoed_on_one_line(shell: Shell) -> None:
    message = shell.refused("advance", "1", "select", "--actor", "structure:1\nadmin", code=BAD_INPUT)
    assert "structure:1\\nadmin" in message


def test_invalid_utf8_is_refused_without_a_traceback(shell: Shell) -> None:
    shell.refused("advance", "1", "decline", "--set", b"reason=\xff\xfe", code=BAD_INPUT)
    shell.refused("candidate", "add", "--name", b"\xc3(", "--email", "a@b.fr", code=BAD_INPUT)


def test_usage_errors_are_one_line(shell: Shell) -> None:
    assert "--bogus" in shell.refused("advance", "1", "select", "--bogus", code=BAD_INPUT)
    assert "case" in shell.refused("advance", code=BAD_INPUT)
    assert "valid integer" in shell.refused("advance", "one", "select", code=BAD_INPUT)


def test_a_contract_in_year_9999_or_before_the_selection_is_refused(shell: Shell) -> None:
    shell.ok("advance", "1", "select", "--at", "2026-03-03T10:00")
    shell.ok("advance", "1", "contact_training_org", "--set", "org=1", "--at", "2026-03-04T10:00")
    sign = ("advance", "1", "sign_contract", "--set", "type=CDD", "--set", "salary=1900", "--at", "2026-03-05T10:00")
    for start, end in (("9999-01-01", "9999-12-31"), ("2021-01-04", "2022-12-31"), ("2028-01-03", "2029-12-31")):
        message = shell.refused(*sign, "--set", f"start={start}", "--set", f"end={end}", code=RULE)
        assert "contract_dates_valid" in message


def test_a_rupture_before_the_taking_of_post_is_refused(shell: Shell) -> None:
    shell.ok("advance", "1", "select", "--at", "2026-03-03T10:00")
    shell.ok("advance", "1", "contact_training_org", "--set", "org=1", "--at", "2026-03-04T10:00")
    contract = ("--set", "type=CDD", "--set", "start=2026-04-01", "--set", "end=2028-03-31", "--set", "salary=1900")
    shell.ok("advance", "1", "sign_contract", *contract, "--at", "2026-03-05T10:00")
    shell.ok("advance", "1", "start_training", "--set", "date=2026-04-01", "--at", "2026-04-01T10:00")
    shell.ok("advance", "1", "complete_training", "--set", "date=2026-08-03", "--at", "2026-08-03T10:00")
    rupture = ("advance", "1", "break_contract", "--set", "reason=demission", "--at", "2026-09-01T10:00")
    assert "rupture_within_contract" in shell.refused(*rupture, "--set", "date=2026-05-01", code=RULE)
    assert shell.ok(*rupture, "--set", "date=2026-08-31")["state"] == "broken"


def test_non_existent_and_ambiguous_paris_times_are_refused(shell: Shell) -> None:
    assert "does not exist" in shell.refused("advance", "1", "select", "--at", "2026-03-29T02:30", code=BAD_INPUT)
    assert "happens twice" in shell.refused("advance", "1", "select", "--at", "2026-10-25T02:30", code=BAD_INPUT)
    assert shell.ok("advance", "1", "select", "--at", "2026-10-25T02:30+01:00")["state"] == "selected"


def test_an_action_dated_in_the_future_is_refused_by_the_real_clock(tmp_path: Path) -> None:
    real = Shell(tmp_path, real_clock=True)
    real.ok("init")
    real.ok("structure", "add", "--name", "Mairie", "--departement", "33", "--posts", "1")
    real.ok("candidate", "add", "--name", "Lou", "--email", "lou@exemple.fr")
    real.ok("present", "--structure", "1", "--candidate", "1")
    for args in (
        ("advance", "1", "select", "--at", "2200-01-01"),
        ("sweep", "--at", "2200-01-01"),
        ("pay", "--at", "2200-01-01"),
        ("anonymise", "--at", "2200-01-01"),
        ("present", "--structure", "1", "--candidate", "1", "--at", "2200-01-01"),
    ):
        assert "not_in_future" in real.refused(*args, code=RULE)
    assert real.ok("advance", "1", "select")["state"] == "selected"


def test_a_database_from_a_newer_conum_is_refused(shell: Shell) -> None:
    con = sqlite3.connect(shell.folder / "conum.db")
    with con:
        con.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    con.close()
    for args in (("init",), ("show", "1"), ("list",)):
        assert "does not know" in shell.refused(*args, code=RULE)
