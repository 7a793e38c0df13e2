"""French that reads right around names typed by people: elision and agreement, for every template.

A name goes into a sentence after "de", "le", "la" or "que": French elides the vowel before a vowel or a
mute h ("le contrat d'Amina Diallo", "d'Hélène") and keeps it before a consonant, an aspirated h ("de
Hugo") or a y sounded as a consonant ("de Yann"). A count takes the plural from 2 on ("1 poste", "0
poste", "2 postes"). The filters are registered in the mail and report environments (``FILTERS``) beside
the French formats of amounts and dates (``states.outbox.render``).
"""

from __future__ import annotations

import unicodedata

#: The months, as a date in French names them.
MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)

#: Words whose h is aspirated: no elision before them. First names and words met in the programme's names.
ASPIRATED_H = frozenset(
    {
        "habib",
        "hakim",
        "hamid",
        "hamza",
        "hans",
        "harry",
        "hassan",
        "hocine",
        "hugo",
        "hugues",
        "hussein",
        "hall",
        "halle",
        "halles",
        "hameau",
        "hameaux",
        "handicap",
        "hangar",
        "hasard",
        "haut",
        "haute",
        "hautes",
        "hauts",
        "havre",
        "héros",
        "hêtre",
        "hibou",
        "hollande",
        "honte",
        "hors",
        "hublot",
        "huit",
        "hutte",
    }
)
_VOWELS = frozenset("aeiouy")
#: The words that elide, and what they become.
ELIDED = {"de": "d'", "le": "l'", "la": "l'", "que": "qu'", "je": "j'", "ne": "n'", "se": "s'", "si": "s'"}


def _base(ch: str) -> str:
    """The letter without its accent, in lower case: ``É`` → ``e``, ``Œ`` → ``o``."""
    if ch in "œŒæÆ":
        return "o" if ch in "œŒ" else "a"
    return unicodedata.normalize("NFD", ch)[0].lower()


def _first_word(text: str) -> str:
    word = text.strip().split(maxsplit=1)[0] if text.strip() else ""
    for sep in "-'’":
        word = word.split(sep, 1)[0]
    return word.strip('«»"“”()[]').lower()


def starts_with_vowel_sound(text: str) -> bool:
    """Whether ``text`` begins with a vowel sound, before which French elides (``Amina``, ``Hélène``, ``Yves``)."""
    word = _first_word(str(text))
    if not word:
        return False
    first = _base(word[0])
    if first == "h":
        return word not in ASPIRATED_H and len(word) > 1 and _base(word[1]) in _VOWELS
    if first == "y":  # Yves, Ysée elide; Yann, Yasmine do not (a y before a vowel is a consonant)
        return len(word) == 1 or _base(word[1]) not in _VOWELS
    return first in _VOWELS


def elide(text: object, word: str = "de") -> str:
    """Return ``word`` then ``text``, elided when it must be: ``elide("Amina Diallo")`` → ``d'Amina Diallo``.

    ``word`` keeps its capital: ``elide("Amina", "De")`` → ``D'Amina``. Only the words of ``ELIDED`` elide.
    """
    value = str(text)
    short = ELIDED.get(word.lower())
    if short is not None and starts_with_vowel_sound(value):
        return (short[0].upper() + short[1:] if word[:1].isupper() else short) + value
    return f"{word} {value}"


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """Return the count and the noun, agreed: ``plural(1, "poste")`` → ``1 poste``, ``plural(3, …)`` → ``3 postes``.

    French keeps the singular for 0 and 1. ``plural_form`` gives an irregular plural (``"mois"``, ``"postes
    attribués"``); else an ``s`` is added to each word. The count is grouped by thousands with a no-break space.
    """
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"a count must be an integer, got {count!r}")
    if abs(count) < 2:
        noun = singular
    else:
        noun = plural_form or " ".join(w if w.endswith(("s", "x", "z")) else w + "s" for w in singular.split(" "))
    return f"{count:,}".replace(",", "\u00a0") + f" {noun}"


def _filter(word: str) -> object:
    def apply(text: object) -> str:
        return elide(text, word)

    apply.__name__ = f"elide_{word}"
    return apply


#: The filters every French template gets: ``{{ name|de }}``, ``{{ name|le }}``, ``{{ name|que }}``,
#: ``{{ name|elide("De") }}``, ``{{ posts|plural("poste") }}``.
FILTERS = {
    "elide": elide,
    "de": _filter("de"),
    "De": _filter("De"),
    "le": _filter("le"),
    "la": _filter("la"),
    "que": _filter("que"),
    "plural": plural,
}

__all__ = ["ASPIRATED_H", "ELIDED", "FILTERS", "elide", "plural", "starts_with_vowel_sound"]
