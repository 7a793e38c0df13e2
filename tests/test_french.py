"""Names read right in French: elision before a vowel or a mute h, agreement of counts."""

from __future__ import annotations

import pytest

from states.french import elide, plural


@pytest.mark.parametrize(
    ("word", "name", "shown"),
    [
        ("de", "Amina Diallo", "d'Amina Diallo"),
        ("de", "Hélène Martin", "d'Hélène Martin"),
        ("de", "Hugo Bernard", "de Hugo Bernard"),
        ("de", "Camille Durand", "de Camille Durand"),
        ("de", "Yves Le Gall", "d'Yves Le Gall"),
        ("de", "Yann Kerouac", "de Yann Kerouac"),
        ("de", "Émilie Roux", "d'Émilie Roux"),
        ("de", "Œuvre des Mères", "d'Œuvre des Mères"),
        ("que", "Ousmane", "qu'Ousmane"),
        ("le", "Havre", "le Havre"),
        ("le", "hôtel de ville", "l'hôtel de ville"),
        ("De", "Inès", "D'Inès"),
        ("de", "8 structures", "de 8 structures"),
        ("à", "Amina", "à Amina"),
    ],
)
def test_elision_before_vowels_and_mute_h_only(word: str, name: str, shown: str) -> None:
    assert elide(name, word) == shown


def test_counts_agree_the_french_way() -> None:
    assert plural(0, "poste") == "0 poste"
    assert plural(1, "poste attribué") == "1 poste attribué"
    assert plural(2, "poste attribué") == "2 postes attribués"
    assert plural(3, "mois", "mois") == "3 mois"
    assert plural(1200, "dossier") == "1\u00a0200 dossiers"
