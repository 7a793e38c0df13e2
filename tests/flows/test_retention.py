"""``retention``: the scheduled anonymisation of candidates not retained."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import Artifact

from flows.retention import retention
from states.clock import parse_instant
from states.views import get_case


def test_retention_anonymises_once_and_says_so(world: Any, engine: Any, conum_env: Any) -> None:
    candidate = world.candidate()
    case = world.present(world.structure(), candidate, at="2026-03-01T10:00")
    world.fire(case, "decline", "2026-03-05T10:00", reason="profil de Camille Durand non retenu")
    assert retention(at=parse_instant("2026-06-05T10:00")) == {"anonymised": 1}
    assert retention(at=parse_instant("2026-06-06T10:00")) == {"anonymised": 0}
    assert get_case(engine, case)["history"][1]["data"]["reason"] == "[anonymisé]"
    summary = Artifact.get("retention-summary")
    assert summary is not None and "personnes anonymisées : 0" in str(summary.data)
