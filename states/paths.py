"""Where the files that ship with the code are: the templates and the migrations.

In a checkout the templates are the top-level ``templates/`` folder; a wheel
installs the same folder as ``states/templates`` (see ``pyproject.toml``), so
an installed ``conum`` finds them without the source tree.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _templates() -> Path:
    installed = _PACKAGE / "templates"
    return installed if installed.is_dir() else _PACKAGE.parent / "templates"


#: The Jinja2 templates: ``mail/<kind>.j2`` for notifications, ``report.html.j2`` for the report.
TEMPLATES: Path = _templates()
#: The Alembic environment and revisions (package data of ``states``).
MIGRATIONS: Path = _PACKAGE / "migrations"
