"""Helpers shared by the test modules: a migrated database to copy, and a dump of every row."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from states.db import get_engine, migrate


@cache
def migrated_database() -> Path:
    """Return a SQLite file migrated to the latest revision, once per run."""
    folder = Path(tempfile.mkdtemp(prefix="conum-migrated-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    url = f"sqlite:///{folder / 'template.db'}"
    migrate(url)
    get_engine(url).dispose()  # closing the last connection folds the write-ahead log into the file
    return folder / "template.db"


def fresh_database(folder: Path) -> str:
    """Copy the migrated database into ``folder``; return its URL (faster than migrating again)."""
    shutil.copy(migrated_database(), folder / "conum.db")
    return f"sqlite:///{folder / 'conum.db'}"


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of every table of the (SQLite) database, to compare before and after a refusal."""
    with engine.connect() as conn:
        tables = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").scalars()
        return {
            name: [tuple(r) for r in conn.exec_driver_sql(f'SELECT * FROM "{name}" ORDER BY rowid')]
            for name in list(tables)
        }
