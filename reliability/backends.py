"""A database of its own for each campaign: a SQLite file in a temporary folder, or a PostgreSQL
database with a unique name, created on the server and dropped afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from states.db import get_engine, migrate

BACKENDS = ("sqlite", "postgresql")
PG_URL = os.environ.get("CONUM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def libpq(url: str) -> str:
    """The same URL in the form psycopg takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def database(backend: str, prefix: str) -> Iterator[tuple[str, Path]]:
    """Yield the URL of a new migrated database and a scratch folder of the campaign; drop both after.

    PostgreSQL never skips: when the server does not answer, the campaign fails.
    """
    folder = Path(tempfile.mkdtemp(prefix=f"conum-{prefix}-"))
    try:
        if backend == "sqlite":
            url = f"sqlite:///{folder / 'conum.db'}"
            migrate(url)
            try:
                yield url, folder
            finally:
                get_engine(url).dispose()
            return
        import psycopg

        admin = psycopg.connect(libpq(PG_URL), autocommit=True, connect_timeout=5)
        name = f"conum_rel_{prefix}_{uuid.uuid4().hex[:10]}"
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            migrate(url)
            yield url, folder
        finally:
            get_engine(url).dispose()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
