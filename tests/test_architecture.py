"""The shape the project promises: the domain imports no Prefect, the schema matches the models."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import states

ROOT = Path(__file__).resolve().parent.parent


def test_domain_imports_no_prefect() -> None:
    modules = [f"states.{m.name}" for m in pkgutil.iter_modules(states.__path__)]
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False", f"a module of states/ imports prefect: {modules}"


def test_migrations_build_exactly_the_models(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    from states.db import get_engine

    with get_engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], f"models and migrations differ: add an Alembic revision ({diff})"
