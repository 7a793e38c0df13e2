"""The ``conum`` command of the domain: every command that needs no Prefect.

``flows.cli`` composes this application with the few commands that need Prefect
(``simulate``) into the ``conum`` entry point.
"""

from __future__ import annotations

from states.cli import applications, cases, registry, runs
from states.cli.app import app, run

__all__ = ["app", "applications", "cases", "main", "registry", "runs"]


def main() -> None:
    run()
