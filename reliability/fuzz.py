"""Fuzzed inputs, property-based (hypothesis), through every parser of ``conum``.

Each example runs the ``conum`` entry point in this process (``reliability.worker.invoke``, what the
``conum`` script runs, without the cost of a new process) against a small programme; a sample runs as
real ``conum`` processes too. The properties: no traceback, whatever the input; an exit code of the
documented set; a refusal prints nothing on stdout and one line on stderr, and leaves the database
exactly as it was (every table's row count, every case's version, every name); what is accepted keeps
every invariant of ``reliability.invariants``.

The parsers: the command line itself (any words, options and bytes), event data (``--set KEY=VALUE``
on every event), instants (``--at``), and the policy file (TOML, ``CONUM_POLICY_FILE``). The CSV import
is fuzzed when ``conum import`` exists.
"""

from __future__ import annotations

import os
import string
import subprocess
import time
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, inspect, text

from reliability.backends import database
from reliability.campaigns import CONUM, Row, environment, over
from reliability.invariants import Ack
from reliability.worker import Outcome, invoke
from reliability.world import World
from states.db import get_engine
from states.lifecycle import EVENTS
from states.policy import Policy

CODES = {0, 1, 2, 3, 4, 5}
COMMANDS = [
    "advance",
    "present",
    "show",
    "list",
    "sweep",
    "pay",
    "events",
    "verify",
    "structure",
    "candidate",
    "training-org",
    "add",
    "export",
    "application",
    "submit",
    "list",
    "--help",
    "anonymise",
]
OPTIONS = [
    "--at",
    "--actor",
    "--set",
    "--json",
    "--name",
    "--email",
    "--departement",
    "--posts",
    "--kind",
    "--structure",
    "--candidate",
    "--state",
    "--overdue",
    "--case",
    "--wait",
    "--siret",
    "--consent",
]
ACTORS = ["admin", "system", "structure:1", "structure:", "candidate:2", "prefet:33", "prefet:2A", "x:y", ""]
EVENT_NAMES = [e.name for e in EVENTS] + ["present", "nope", ""]


def nasty_text() -> st.SearchStrategy[str]:
    """Any text: control characters, markup, format strings, SQL, surrogates, very long numbers."""
    return st.one_of(
        st.text(max_size=40),
        st.text(st.characters(codec=None, categories=None), max_size=12),
        st.sampled_from(
            [
                "[/note]",
                "[bold]x",
                "{0}",
                "%s%n",
                "'; DROP TABLE history; --",
                "\n",
                "\x00",
                "9" * 40,
                "-1",
                "0",
                "1e309",
                "NaN",
                "2200-01-01",
                "2026-03-29T02:30",
                "2026-10-25T02:30",
                "\ud800",
            ]
        ),
    )


def instants() -> st.SearchStrategy[str]:
    """Instants as a person would type them, and not."""
    formatted = st.builds(
        lambda d, fmt, offset: d.strftime(fmt) + offset,
        st.datetimes(),
        st.sampled_from(["%Y-%m-%dT%H:%M", "%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%d/%m/%Y"]),
        st.sampled_from(["", "Z", "+01:00", "+02:00", "-11:00", "+14:00", "+25:00", "+0100"]),
    )
    return st.one_of(formatted, nasty_text())


def _fingerprint(engine: Engine) -> tuple[Any, ...]:
    """Every table's row count, the cases' versions and states, the names: what a refusal must not change."""
    with engine.connect() as con:
        tables = sorted(t for t in inspect(con).get_table_names() if t != "alembic_version")
        counts = tuple(con.execute(text(f'SELECT count(*) FROM "{t}"')).scalar() for t in tables)
        cases = tuple(con.execute(text("SELECT id, state, version FROM recruitment_case ORDER BY id")).all())
        names = tuple(con.execute(text("SELECT id, name, email FROM candidate ORDER BY id")).all())
    return counts, cases, names


class Trial:
    """Runs one fuzzed command and judges it."""

    def __init__(self, row: Row, engine: Engine, url: str, acks: list[Ack]) -> None:
        self.row, self.engine, self.url, self.acks = row, engine, url, acks

    def __call__(self, argv: list[str], who: str, env: dict[str, str] | None = None) -> Outcome | None:
        if over(self.row):
            return None
        before = _fingerprint(self.engine)
        saved = {k: os.environ.get(k) for k in env or {}}
        os.environ.update(env or {})
        try:
            outcome = invoke([*argv, "--db", self.url])
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.row.tried += 1
        self.row.judge(outcome.code, outcome.out, outcome.err, outcome.traceback, f"{who} {argv!r}"[:300])
        if outcome.code not in CODES and outcome.traceback is None:
            self.row.notes[f"exit {outcome.code}"] += 1
        if outcome.code != 0:
            if _fingerprint(self.engine) != before:
                self.row.half.add(f"{who}: refused (exit {outcome.code}) but the database changed: {argv!r}"[:300])
            self.row.notes["refused"] += 1
        else:
            self.row.notes["accepted"] += 1
            if len(argv) > 2 and argv[0] == "advance" and argv[1].isdigit():
                self.acks.append(Ack(int(argv[1]), argv[2]))
        return outcome


def fuzz(backend: str, examples: dict[str, int], processes: int = 0, seed_value: int = 1) -> Row:
    """Fuzz each parser with ``examples[parser]`` inputs; ``processes`` of the command-line ones also
    run as real ``conum`` processes."""
    row, started = Row("fuzz", backend), time.monotonic()
    os.environ["CONUM_CLOCK"] = "simulated"
    with database(backend, "fuzz") as (url, folder):
        engine, acks = get_engine(url), list[Ack]()
        world = World(engine)
        structure = world.structure(posts=5)
        cases = [world.case(structure, stage) for stage in ("presented", "selected", "contacted", "in_post")]
        trial = Trial(row, engine, url, acks)
        sample: list[list[str]] = []

        def run(strategy: st.SearchStrategy[Any], n: int, test: Any) -> None:
            if n <= 0:
                return
            wrapped = settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))(
                seed(seed_value)(given(strategy)(test))
            )
            wrapped()

        tokens = st.lists(
            st.one_of(
                st.sampled_from(COMMANDS),
                st.sampled_from(OPTIONS),
                st.sampled_from(ACTORS),
                st.sampled_from([str(c) for c in cases]),
                st.integers(-5, 10**12).map(str),
                nasty_text(),
            ),
            max_size=8,
        )

        def command_line(argv: list[str]) -> None:
            if argv and argv[0] in ("init", "demo", "simulate"):
                return
            trial(argv, "argv")
            if len(sample) < processes:
                sample.append(argv)

        run(tokens, examples.get("argv", 0), command_line)

        event_data = st.tuples(
            st.sampled_from(cases),
            st.sampled_from(EVENT_NAMES),
            st.lists(
                st.tuples(
                    st.sampled_from(["type", "start", "end", "salary", "org", "reason", "date", "note", "", "x"]),
                    st.one_of(
                        instants(),
                        st.sampled_from(["CDI", "CDD", "PEC", "1900.00", "1", "-1", "1e3"]),
                        st.decimals(allow_nan=True).map(str),
                        nasty_text(),
                    ),
                ),
                max_size=5,
            ),
            st.sampled_from(ACTORS),
            instants(),
        )

        def sets(args: tuple[int, str, list[tuple[str, str]], str, str]) -> None:
            case, event, pairs, actor, at = args
            argv = ["advance", str(case), event, "--actor", actor, "--at", at, "--json"]
            for key, value in pairs:
                argv += ["--set", f"{key}={value}"]
            trial(argv, "--set")

        run(event_data, examples.get("set", 0), sets)

        def at(args: tuple[str, str, int]) -> None:
            instant, command, case = args
            argv = {
                "show": ["show", str(case), "--at", instant],
                "list": ["list", "--overdue", "--at", instant],
                "select": ["advance", str(case), "select", "--at", instant],
                "sweep": ["sweep", "--at", instant, "--wait", "0"],
                "pay": ["pay", "--at", instant, "--wait", "0"],
            }[command]
            trial(argv, "--at")

        run(
            st.tuples(instants(), st.sampled_from(["show", "list", "select", "sweep", "pay"]), st.sampled_from(cases)),
            examples.get("at", 0),
            at,
        )

        counter = iter(range(10**9))

        def policy(document: str) -> None:
            path = folder / f"policy-{next(counter)}.toml"
            path.write_text(document, encoding="utf-8", errors="surrogateescape")
            trial(
                ["sweep", "--at", "2026-03-03T00:00", "--json", "--wait", "0"],
                "policy",
                {"CONUM_POLICY_FILE": str(path)},
            )

        run(policy_documents(), examples.get("policy", 0), policy)

        if "import" in _commands():
            counter_csv = iter(range(10**9))

            def csv_import(args: tuple[str, bytes, bool]) -> None:
                kind, content, dry = args
                path = folder / f"import-{next(counter_csv)}.csv"
                path.write_bytes(content)
                trial(["import", kind, str(path), "--json", *(["--dry-run"] if dry else [])], "csv")

            run(
                st.tuples(st.sampled_from(["structures", "candidates", "x"]), csv_documents(), st.booleans()),
                examples.get("csv", 0),
                csv_import,
            )
        else:
            row.notes[csv_note()] += 1

        env = environment(url, folder)
        for argv in sample:
            if over(row):
                break
            try:
                done = subprocess.run(
                    [str(CONUM), *argv, "--db", url], capture_output=True, text=True, env=env, cwd=folder, timeout=120
                )
            except (UnicodeEncodeError, ValueError):
                continue  # a lone surrogate or a NUL byte cannot be an argument of a real process
            row.tried += 1
            row.notes["real processes"] += 1
            row.judge(done.returncode, done.stdout, done.stderr, who=f"conum process {argv!r}"[:300])
        row.finish(url, engine, acks)
    row.seconds = time.monotonic() - started
    return row


def _commands() -> set[str]:
    from states.cli import app

    return {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}


def _toml_value() -> st.SearchStrategy[str]:
    scalar = st.one_of(
        st.integers(-(10**20), 10**20).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f).replace("inf", "inf").lower()),
        st.booleans().map(lambda b: "true" if b else "false"),
        st.text(string.printable, max_size=20).map(
            lambda s: (
                '"'
                + s.replace("\\", "\\\\")
                .replace('"', '\\"')
                .replace("\n", "\\n")
                .replace("\r", "\\r")
                .replace("\t", "\\t")
                .replace("\x0b", "\\u000b")
                .replace("\x0c", "\\f")
                + '"'
            )
        ),
        st.dates().map(str),
    )
    return st.one_of(scalar, st.lists(scalar, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"))


def policy_documents() -> st.SearchStrategy[str]:
    """TOML documents over the policy's own keys (sections included) with any values, and raw text."""
    defaults = Policy().model_dump(mode="json")
    top = [k for k, v in defaults.items() if not isinstance(v, dict | list)]
    sections = {k: list(v) for k, v in defaults.items() if isinstance(v, dict)}
    line = st.tuples(st.sampled_from([*top, "unknown_key"]), _toml_value()).map(lambda kv: f"{kv[0]} = {kv[1]}")
    section = st.sampled_from(sorted(sections)).flatmap(
        lambda name: st.lists(
            st.tuples(st.sampled_from([*sections[name], "x"]), _toml_value()).map(lambda kv: f"{kv[0]} = {kv[1]}"),
            max_size=4,
        ).map(lambda lines: f"[{name}]\n" + "\n".join(lines))
    )
    smic = st.lists(
        st.tuples(st.dates().map(str), _toml_value()).map(
            lambda sv: f"[[smic]]\nsince = {sv[0]}\nmonthly_cents = {sv[1]}"
        ),
        max_size=2,
    )
    document = st.tuples(st.lists(line, max_size=4), st.lists(section, max_size=3), smic).map(
        lambda parts: "\n".join(parts[0]) + "\n" + "\n".join(parts[1]) + "\n" + "\n".join(parts[2]) + "\n"
    )
    return st.one_of(document, st.text(max_size=60))


def csv_note() -> str:
    if "import" in _commands():
        return "The CSV import (`conum import structures|candidates FILE`, with and without `--dry-run`) is fuzzed too."
    return "The CSV import is not fuzzed: this version has no `conum import` command."


HEADERS = [
    "nom",
    "siret",
    "departement",
    "postes",
    "type",
    "courriel",
    "consentement",
    "Département",
    "NOM ",
    "raison sociale",
    "e-mail",
    "dept",
    "inconnu",
    "",
]
CELLS = [
    "Mairie de Bègles",
    "73282932000074",
    "732 829 320 00074",
    "12345678901234",
    "33",
    "2A",
    "974",
    "1",
    "0",
    "101",
    "publique",
    "privée",
    "oui",
    "non",
    "a@exemple.fr",
    "=1+1",
    "+33",
    "@x",
    "-2",
    '"',
    '""',
    "a;b",
    "<b>x</b>",
    "[a](b)",
    "x" * 201,
]


def csv_documents() -> st.SearchStrategy[bytes]:
    """CSV files as the national platform exports them, and as a careless one would: any header, any
    cell, either separator, a byte-order mark or not, Latin-1 bytes, quotes left open, raw bytes."""
    cell = st.one_of(st.sampled_from(CELLS), st.text(max_size=15))
    rows = st.lists(st.lists(cell, min_size=1, max_size=7), max_size=6)
    header = st.lists(st.sampled_from(HEADERS), min_size=1, max_size=7)

    def build(parts: tuple[list[str], list[list[str]], str, str, str]) -> bytes:
        head, body, sep, bom, encoding = parts
        text = "\n".join(sep.join(r) for r in [head, *body]) + "\n"
        data = text.encode(encoding, errors="replace") if encoding != "utf-8" else text.encode("utf-8", "surrogatepass")
        return (b"\xef\xbb\xbf" if bom else b"") + data

    document = st.tuples(
        header,
        rows,
        st.sampled_from([";", ",", "\t"]),
        st.sampled_from(["", "bom"]),
        st.sampled_from(["utf-8", "utf-8", "latin-1"]),
    ).map(build)
    return st.one_of(document, st.binary(max_size=200))
