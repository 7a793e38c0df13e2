"""The documents derived from the lifecycle table stay identical to it."""

from __future__ import annotations

import re
from pathlib import Path

from states.machine import mermaid
from states.policy import load_policy

ROOT = Path(__file__).resolve().parent.parent


def test_readme_diagram_is_generated_from_the_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```mermaid\n(.*?)\n```", readme, flags=re.S)
    assert blocks, "README has no mermaid diagram"
    assert blocks[0] == mermaid(), "README diagram is stale: paste states.lifecycle.mermaid() into it"


def test_readme_starts_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:6]
    assert any("make demo" in line for line in head)
    assert any("make test" in line for line in head)


def test_example_policy_file_loads() -> None:
    policy = load_policy(ROOT / "docs" / "policy.example.toml")
    assert policy.deadlines["presented"].deadline_days == 30
    assert policy.subsidy.tranche_percents == [40, 30, 30]
