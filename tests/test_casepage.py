"""A case's page: French, the path with the current step marked, and user text that stays text."""

from __future__ import annotations

from typing import Any

from states import registry
from states.casepage import page_markdown, text
from states.db import read_session, write_session


def test_markup_in_a_name_is_shown_as_text() -> None:
    shown = text("[clic](http://x.fr) <img src=x> **gras** | # titre\nligne")
    assert "](" not in shown.replace("\\](", "").replace("\\(", "")
    assert "<" not in shown and "\n" not in shown
    assert shown.startswith("\\[clic\\]\\(http://x\\.fr\\)")
    assert "\\|" in shown and "\\*\\*gras\\*\\*" in shown


def test_the_page_names_the_parties_marks_the_current_step_and_lists_the_history(world: Any) -> None:
    with write_session(world.engine) as s:
        structure = registry.add_structure(s, name="Mairie | <b>[x](y)</b>", departement="971", posts=1)
    case = world.present(structure, world.candidate(), at="2026-03-01T10:00")
    world.fire(case, "select", "2026-03-02T10:00", actor=f"structure:{structure}")

    with read_session(world.engine) as s:
        page = page_markdown(s, case)

    assert page.startswith(f"# Dossier n° {case} — Candidat retenu\n")
    assert "✓ Candidat présenté → **▶ Candidat retenu** → · Organisme de formation contacté" in page
    assert "Mairie \\| &lt;b&gt;\\[x\\]\\(y\\)&lt;/b&gt;" in page
    assert "<b>" not in page
    assert f"| 2 mars 2026 à 10 h 00 | structure n° {structure} | Retenir le candidat | Candidat présenté | " in page
    assert "Échéance : 17 mars 2026 à 10 h 00" in page
    assert "selected" not in page and "candidate_presented" not in page
