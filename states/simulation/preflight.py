"""The checks before a simulation writes anything: a new or empty database, an output folder no run has used.

Two programmes must not mix in one database, nor their mail and payment
orders in one folder: ``preflight`` refuses either with ``BadInput`` saying
what to do, and writes nothing (a new SQLite file is not even created).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, func
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from states.db import get_engine, has_schema
from states.errors import BadInput
from states.models import Candidate, Case, Structure


def programme_rows(engine: Engine) -> dict[str, int]:
    """Count what the database holds already (cases, structures, candidates)."""
    with Session(engine) as s:
        return {
            "cases": int(s.exec(select(func.count()).select_from(Case)).one()),
            "structures": int(s.exec(select(func.count()).select_from(Structure)).one()),
            "candidates": int(s.exec(select(func.count()).select_from(Candidate)).one()),
        }


def check_empty(engine: Engine, url_shown: str) -> None:
    """Refuse a database that holds a programme already: two programmes must not mix."""
    rows = programme_rows(engine)
    if any(rows.values()):
        held = ", ".join(f"{n:,} {what}" for what, n in rows.items() if n)
        raise BadInput(
            f"the database {url_shown} already holds a programme ({held}): a simulation needs a new or empty "
            "database; give another --db or delete that database first"
        )


def check_out_dir(out_dir: Path) -> None:
    """Refuse an output folder whose mail or payment folder holds files of an earlier run."""
    for sub in ("mail", "payments"):
        folder = out_dir / sub
        if folder.is_dir() and any(folder.iterdir()):
            raise BadInput(
                f"{folder} already holds files of an earlier run: delete it or write the report elsewhere "
                "(--report another/folder/report.html)"
            )
        if folder.exists() and not folder.is_dir():
            raise BadInput(f"{folder} exists and is not a folder: move it away or write the report elsewhere")


def sqlite_folder(database_url: str) -> Path | None:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(str(url.database)).resolve().parent
    return None


def default_database(report_path: Path | str) -> str:
    """The simulation's database when none is given: a SQLite file next to the report."""
    return f"sqlite:///{Path(report_path).resolve().parent / 'simulation.db'}"


def preflight(database_url: str, report_path: Path | str) -> None:
    """Refuse, writing nothing, a database or an output folder an earlier run has used."""
    try:
        url = make_url(database_url)
    except Exception:
        raise BadInput(
            f"'{database_url}' is not a database URL: use e.g. sqlite:///run/sim/simulation.db or "
            "postgresql+psycopg://user@host:5432/db"
        ) from None
    out = Path(report_path).resolve()
    if out.is_dir():
        raise BadInput(f"--report {report_path} is a folder: give the path of an HTML file, e.g. {out / 'report.html'}")
    check_out_dir(out.parent)
    folder = sqlite_folder(database_url)
    if folder is not None and not Path(str(url.database)).exists():
        return  # a new SQLite file: nothing to check, and connecting would create it
    engine = get_engine(database_url)
    if has_schema(engine):
        check_empty(engine, url.render_as_string(hide_password=True))
