"""The shape the project promises: the domain imports no Prefect, rooms stay small, the schema matches the models."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import states

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("prefect", "flows")
#: Past this a room is a sign to split it.
MAX_LINES = 500


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Return every module a syntax tree imports, wherever the import is (functions included), with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def forbidden_imports(source: str) -> list[str]:
    return [
        f"line {line}: {module}"
        for line, module in imported_modules(ast.parse(source))
        if module.split(".")[0] in FORBIDDEN
    ]


def test_the_boundary_check_sees_imports_inside_functions() -> None:
    source = "def f():\n    from prefect import flow\n    import flows.cli\n    importlib.import_module('prefect')\n"
    assert forbidden_imports(source) == ["line 2: prefect", "line 3: flows.cli", "line 4: prefect"]


def test_no_module_of_the_domain_imports_prefect_or_flows_anywhere() -> None:
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in sorted((ROOT / "states").rglob("*.py"))
        if (found := forbidden_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, f"the domain imports Prefect or the flows: {offenders}"


def test_importing_every_module_of_the_domain_loads_no_prefect() -> None:
    modules = [m.name for m in pkgutil.walk_packages(states.__path__, "states.") if ".migrations" not in m.name]
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False", f"a module of states/ imports prefect: {modules}"


def test_no_module_of_states_or_flows_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for folder in ("states", "flows")
        for path in (ROOT / folder).rglob("*.py")
        if "versions" not in path.parts and (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these rooms by concept: {long}"


def test_migrations_build_exactly_the_models(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    from states.db import get_engine

    with get_engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], f"models and migrations differ: add an Alembic revision ({diff})"


@pytest.mark.slow
def test_the_wheel_holds_states_and_flows_with_templates_and_migrations(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert build.returncode == 0, build.stderr
    [wheel] = tmp_path.glob("conum-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"states", "flows"}
    assert "states/templates/report.html.j2" in names
    assert "states/templates/mail/contract_signed.j2" in names
    assert "states/migrations/env.py" in names and "states/migrations/script.py.mako" in names
    assert any(n.startswith("states/migrations/versions/") and n.endswith(".py") for n in names)
