"""The ``conum`` application: its options, and how every command refuses, reads the database and prints.

Every subcommand takes ``--db URL``, ``--json`` and ``--at DATETIME``;
commands that change something take ``--actor``. A refused command prints one
message on stderr naming the rule and what to do, prints nothing on stdout,
exits non-zero (1: a rule or permission refused, 2: bad input, 3: a
concurrent change, 4: not found) and leaves the database untouched.
A sweep or a payment run that had to leave due cases undone, because another
run or action held them longer than it waits, prints its report and then one
line on stderr, and exits 5.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from states import errors

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    help="Conum: recruitments of conseillers numériques as durable state machines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
structure_app = typer.Typer(help="Host structures.", no_args_is_help=True)
candidate_app = typer.Typer(help="Candidates of the national pool.", no_args_is_help=True)
org_app = typer.Typer(help="Approved training organisations.", no_args_is_help=True)
app.add_typer(structure_app, name="structure")
app.add_typer(candidate_app, name="candidate")
app.add_typer(org_app, name="training-org")

Db = Annotated[
    str | None, typer.Option("--db", help="SQLAlchemy URL (default: CONUM_DATABASE_URL or sqlite:///./conum.db).")
]
Json = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")]
At = Annotated[
    str | None, typer.Option("--at", help="Instant of the action or read (ISO 8601; Europe/Paris if no offset).")
]
Actor = Annotated[
    str, typer.Option("--actor", help="Who acts: admin, structure:<id>, candidate:<id> or prefet:<département>.")
]

EXIT = {errors.BadInput: 2, errors.Conflict: 3, errors.NotFound: 4, errors.Held: 5}
#: A batch run did its work but left due cases that another run or action held.
EXIT_HELD = EXIT[errors.Held]
# Piped output is not cut to 80 columns: states and instants stay whole. No markup and no highlighting:
# names and reasons are printed as they were typed (styles are given with Text objects).
out = (
    Console(markup=False, highlight=False) if sys.stdout.isatty() else Console(width=200, markup=False, highlight=False)
)


def one_line(text: str) -> str:
    """Return ``text`` on one line: line breaks and other control characters shown escaped, as data."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))


def fail(message: str, code: int, label: str = "refused:") -> None:
    """Print one refusal line on stderr (the message is text, never markup) and exit with ``code``."""
    line = Text.assemble((label, "bold red"), " ", one_line(message))
    Console(stderr=True, highlight=False, soft_wrap=True).print(line)
    raise typer.Exit(code)


def warn(message: str, code: int) -> None:
    """After a report was printed: one line on stderr saying what was left undone, and exit with ``code``."""
    fail(message, code, "incomplete:")


def run(argv: list[str] | None = None) -> None:
    """Run the ``conum`` application: every refusal, usage errors included, is one line on stderr.

    Arguments that are not valid UTF-8 are refused before anything runs: they would reach the
    database and the terminal as undecodable text.
    """
    args = sys.argv[1:] if argv is None else argv
    for position, arg in enumerate(args, start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            _refuse_usage(f"argument {position} is not valid UTF-8 text: give it in UTF-8")
    if not args:
        args = ["--help"]
    # the driver's own warnings (psycopg: "error ignored terminating ..." when the connection is lost)
    # would print a second line beside the refusal that already says what happened
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    logging.getLogger("psycopg").propagate = False
    try:
        code = app(args, standalone_mode=False)
    except typer.Abort:
        _refuse_usage("interrupted; nothing more was done", 1)
    except typer.TyperException as exc:  # a usage error: unknown option, missing argument, bad value
        command = getattr(getattr(exc, "ctx", None), "command_path", "conum")
        _refuse_usage(f"{exc.format_message()} (see `{command} --help`)", getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


def _refuse_usage(message: str, code: int = 2) -> None:
    try:
        fail(message, code)
    except typer.Exit as done:
        sys.exit(done.exit_code)


def guarded(fn: F) -> F:
    """Turn every refusal into one message on stderr and a non-zero exit, with nothing on stdout."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except errors.ConumError as exc:
            fail(str(exc), next((EXIT[t] for t in type(exc).__mro__ if t in EXIT), 1))
        except OverflowError:
            fail("a number or a date is out of range: give an id, amount or instant of a sensible size", 2)
        except Exception as exc:  # the database itself refused: say so, nothing was committed
            from sqlalchemy.exc import SQLAlchemyError

            if isinstance(exc, SQLAlchemyError):
                orig = getattr(exc, "orig", None) or exc
                if getattr(orig, "sqlstate", None) in ("40P01", "40001"):  # a deadlock or serialisation failure
                    fail(
                        "another change of the same rows ran at the same time and the database stopped this one "
                        "(rule: conflict): nothing was changed; run it again",
                        3,
                    )
                first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
                fail(f"database error: {first}; nothing was changed. Check --db and run `conum init`", 1)
            raise

    return wrapper  # type: ignore[return-value]


def emit(obj: dict[str, Any], as_json: bool, human: Callable[[], None] | None = None) -> None:
    if as_json or human is None:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    else:
        human()


def url(db: str | None) -> str:
    from states.config import settings

    return db or settings().database_url


def check_sqlite_file(path: Path) -> None:
    """Refuse a missing or schema-less SQLite file without writing to it (read-only look)."""
    import sqlite3

    if not path.is_file():
        raise errors.NotFound(f"no database at {path}: run `conum init` first")
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'recruitment_case'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise errors.BadInput(
            f"{path} is not a Conum database ({exc}): give the right --db or run `conum init`"
        ) from None
    if not found:
        raise errors.NotFound(f"the database at {path} has no Conum schema: run `conum init` first")


def engine(db: str | None, *, create: bool = False) -> Any:
    """Return the engine of ``--db``; refuse a database without the schema unless ``create``."""
    from sqlalchemy.engine import make_url

    from states.db import check_revision, get_engine, has_schema

    address = url(db)
    try:
        parsed = make_url(address)
    except Exception:
        raise errors.BadInput(
            f"'{address}' is not a database URL: use e.g. sqlite:///./conum.db or postgresql+psycopg://user@host:5432/db"
        ) from None
    if not create and parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        check_sqlite_file(Path(parsed.database))
    found = get_engine(address)
    if not create and not has_schema(found):
        raise errors.NotFound(
            f"the database at {parsed.render_as_string(hide_password=True)} has no Conum schema: run `conum init` first"
        )
    if not create:
        check_revision(found)
    return found


def instant(at: str | None) -> datetime:
    from states.clock import now, parse_instant

    return parse_instant(at) if at else now()


def policy() -> Any:
    from states.config import policy

    return policy()


def write(db: str | None) -> Any:
    from states.db import write_session

    return write_session(engine(db))
