"""``conum application …``: the same options, JSON shapes, exit codes and refusals as the case commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import snapshot
from typer.testing import CliRunner

from states.cli import app
from states.db import get_engine

SIRET = "73282932000074"


class Cli:
    def __init__(self, url: str) -> None:
        self.url, self.runner = url, CliRunner()

    def run(self, *args: object) -> Any:
        return self.runner.invoke(app, [*map(str, args), "--db", self.url])

    def ok(self, *args: object) -> dict[str, Any]:
        res = self.run(*args, "--json")
        assert res.exit_code == 0, res.stderr
        assert res.stdout.count("\n") == 1
        return dict(json.loads(res.stdout))

    def refused(self, *args: object, code: int) -> str:
        res = self.run(*args)
        assert (res.exit_code, res.stdout) == (code, ""), res.stderr
        line: str = res.stderr.strip()
        assert line.startswith("refused:") and "\n" not in line
        return line


@pytest.fixture
def cli(db_url: str) -> Cli:
    return Cli(db_url)


def submit(cli: Cli, siret: str = SIRET, **extra: Any) -> dict[str, Any]:
    args = ["--name", "Médiathèque <b>[red]x[/red]</b>", "--departement", "86", "--kind", "private", "--posts", 2]
    for key, value in extra.items():
        args += [f"--{key}", value]
    return cli.ok("application", "submit", *args, "--siret", siret, "--at", "2026-01-05T10:00")


def test_application_from_submission_to_signed_convention(cli: Cli) -> None:
    view = submit(cli, email="contact@mediatheque.fr")
    assert (view["state"], view["posts_requested"], view["posts_validated"], view["existing"]) == (
        "submitted",
        2,
        0,
        False,
    )
    assert view["name"] == "Médiathèque <b>[red]x[/red]</b>"  # user text is data
    app = view["id"]
    step = ["application", "advance", app]
    cli.ok(*step, "give_opinion", "--set", "opinion=favourable", "--actor", "prefet:86", "--at", "2026-01-10T10:00")
    view = cli.ok(*step, "validate", "--set", "posts=1", "--set", "committee=COSELEC-7", "--at", "2026-01-20T10:00")
    assert (view["state"], view["posts_validated"], view["committee"]) == ("validated", 1, "COSELEC-7")
    sid = view["structure_id"]
    view = cli.ok(
        *step, "sign_convention", "--set", "start=2026-02-01", "--actor", f"structure:{sid}", "--at", "2026-01-25T10:00"
    )
    assert view["state"] == "convention_signed"
    shown = cli.ok("application", "show", app)
    assert {"id", "state", "structure_id", "posts_requested", "posts_validated", "history"} <= set(shown)
    assert [h["event"] for h in shown["history"]] == ["submit", "give_opinion", "validate", "sign_convention"]
    assert "history_intact" not in shown
    listed = cli.ok("application", "list", "--state", "convention_signed", "--departement", "86")["applications"]
    assert [a["id"] for a in listed] == [app]
    again = submit(cli, siret="732 829 320 00074")
    assert (again["id"], again["existing"], again["state"]) == (app, True, "convention_signed")
    human = cli.run("application", "show", app)
    assert human.exit_code == 0 and "[red]x[/red]" in human.stdout


def test_refusals_name_the_rule_and_change_nothing(cli: Cli, db_url: str) -> None:
    app = submit(cli)["id"]
    before = snapshot(get_engine(db_url))
    sub = ["application", "submit", "--name", "X", "--kind", "public", "--posts", 1, "--departement"]
    assert "rule: siret_valid" in cli.refused(*sub, "33", "--siret", "73282932000075", code=2)
    assert "département" in cli.refused(*sub, "96", "--siret", "44306184100047", code=2)
    assert "rule: lifecycle" in cli.refused("application", "advance", app, "validate", code=1)
    assert "rule: actor_may_fire" in cli.refused(
        "application", "advance", app, "give_opinion", "--set", "opinion=favourable", "--actor", "prefet:33", code=1
    )
    assert "needs opinion" in cli.refused("application", "advance", app, "give_opinion", code=2)
    assert "does not exist" in cli.refused("application", "show", 99, code=4)
    assert "unknown state" in cli.refused("application", "list", "--state", "nowhere", code=2)
    assert snapshot(get_engine(db_url)) == before


def test_events_lists_the_table_with_fields_and_guards(cli: Cli) -> None:
    rows = cli.ok("application", "events", "prefet_reviewed")["events"]
    validate = next(r for r in rows if r["event"] == "validate")
    assert validate["to"] == "validated" and "within_envelope" in validate["guards"]
    assert [f["name"] for f in validate["fields"] if f["required"]] == ["posts", "committee"]
    assert cli.ok("application", "events")["events"][0]["event"] == "submit"


def test_structure_add_is_recorded_as_imported(cli: Cli, tmp_path: Path) -> None:
    sid = cli.ok("structure", "add", "--name", "Mairie", "--departement", "33", "--posts", 2)["id"]
    found = cli.ok("application", "list")["applications"]
    assert [(a["structure_id"], a["state"], a["posts_validated"]) for a in found] == [(sid, "convention_signed", 2)]
    history = cli.ok("application", "show", found[0]["id"])["history"]
    assert [(h["event"], h["from"], h["to"], h["actor"]) for h in history] == [
        ("import", None, "convention_signed", "admin")
    ]
