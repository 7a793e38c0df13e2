"""Checking one row of an export: each cell trimmed, typed and refused with a reason in English and French.

``states.imports`` reads the file and calls ``check_structure`` or ``check_candidate`` on each row; they
return the values to store and the reasons the row cannot be imported (none when it can).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from states.applications.rules import check_siret
from states.errors import ConumError
from states.geo import DEPARTEMENTS

#: Longest name and e-mail address accepted (characters).
MAX_NAME = 200
MAX_EMAIL = 254
#: Most posts one structure may be given by an import.
MAX_POSTS = 100
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
FORMULA = ("=", "+", "-", "@", "\t", "\r")


_KIND_VALUES = {
    "public": "public",
    "publique": "public",
    "collectivite": "public",
    "collectivite territoriale": "public",
    "private": "private",
    "privee": "private",
    "prive": "private",
    "association": "private",
}
_YES = {"oui", "o", "yes", "y", "1", "vrai", "true", "x"}
_NO = {"non", "n", "no", "0", "faux", "false", ""}


def normalise_header(value: str) -> str:
    """Return a header as compared: no accents, lowercase, words separated by one space."""
    plain = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", plain.lower()).split())


def _text(value: str, what_en: str, what_fr: str, limit: int) -> tuple[str, tuple[str, str] | None]:
    """Return a cell trimmed, or the reason it cannot be stored (formula, control character, length)."""
    value = value.strip()
    if len(value) > limit:
        return value, (
            f"{what_en} is {len(value)} characters long, at most {limit}: shorten it",
            f"{what_fr} fait {len(value)} caractères, au plus {limit} : raccourcissez-le",
        )
    if any(not ch.isprintable() for ch in value):
        return value, (
            f"{what_en} contains a control character (line break, tab, NUL): remove it",
            f"{what_fr} contient un caractère de contrôle (saut de ligne, tabulation, NUL) : retirez-le",
        )
    if value.startswith(FORMULA):
        return value, (
            f"{what_en} starts with {value[0]!r}, as a spreadsheet formula does: remove that character",
            f"{what_fr} commence par « {value[0]} », comme une formule de tableur : retirez ce caractère",
        )
    return value, None


def _departement(value: str) -> str | None:
    code = value.strip().upper()
    if code.isdigit() and len(code) == 1:  # a spreadsheet drops the leading zero of 01 … 09
        code = "0" + code
    return code if code in DEPARTEMENTS else None


def check_structure(cells: dict[str, str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    out: dict[str, Any] = {}
    bad: list[tuple[str, str]] = []
    name, why = _text(cells.get("nom", ""), "the name", "le nom", MAX_NAME)
    if why:
        bad.append(why)
    elif not name:
        bad.append(("the name is empty: give the structure's name", "le nom est vide : donnez le nom de la structure"))
    out["name"] = name
    try:
        out["siret"] = check_siret(cells.get("siret", ""))
    except ConumError:
        raw = cells.get("siret", "").strip()[:40]
        bad.append(
            (
                f"SIRET {raw!r} is not valid (14 digits with the right check key): check it with INSEE",
                f"le SIRET « {raw} » n'est pas valide (14 chiffres et la bonne clé) : vérifiez-le auprès de l'INSEE",
            )
        )
    code = _departement(cells.get("departement", ""))
    if code is None:
        raw = cells.get("departement", "").strip()[:20]
        bad.append(
            (
                f"{raw!r} is not a département code: use e.g. 01, 33, 2A, 974",
                f"« {raw} » n'est pas un code de département : utilisez par exemple 01, 33, 2A, 974",
            )
        )
    out["departement"] = code
    posts = cells.get("postes", "").strip()
    if not posts.isdigit() or not 1 <= int(posts) <= MAX_POSTS:
        bad.append(
            (
                f"posts {posts[:20]!r} is not a whole number from 1 to {MAX_POSTS}: give the posts attributed",
                f"les postes « {posts[:20]} » ne sont pas un nombre entier de 1 à {MAX_POSTS} : "
                "donnez le nombre de postes attribués",
            )
        )
    else:
        out["posts"] = int(posts)
    kind = _KIND_VALUES.get(normalise_header(cells.get("type", "")) or "public")
    if kind is None:
        raw = cells.get("type", "").strip()[:30]
        bad.append(
            (
                f"type {raw!r} is unknown: write publique (collectivité) or privée (association)",
                f"le type « {raw} » est inconnu : écrivez publique (collectivité) ou privée (association)",
            )
        )
    out["kind"] = kind
    out["email"] = _email(cells.get("courriel", ""), bad, required=False)
    return out, bad


def _email(raw: str, bad: list[tuple[str, str]], *, required: bool) -> str | None:
    value, why = _text(raw, "the e-mail address", "l'adresse électronique", MAX_EMAIL)
    if why:
        bad.append(why)
        return None
    if not value:
        if required:
            bad.append(("the e-mail address is empty: give one", "l'adresse électronique est vide : donnez-en une"))
        return None
    if not _EMAIL.match(value):
        bad.append(
            (
                f"{value[:60]!r} is not an e-mail address: write it as name@domain.fr",
                f"« {value[:60]} » n'est pas une adresse électronique : écrivez-la nom@domaine.fr",
            )
        )
        return None
    return value


def check_candidate(cells: dict[str, str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    out: dict[str, Any] = {}
    bad: list[tuple[str, str]] = []
    name, why = _text(cells.get("nom", ""), "the name", "le nom", MAX_NAME)
    if why:
        bad.append(why)
    elif not name:
        bad.append(("the name is empty: give the candidate's name", "le nom est vide : donnez le nom du candidat"))
    out["name"] = name
    out["email"] = _email(cells.get("courriel", ""), bad, required=True)
    raw = cells.get("departement", "").strip()
    out["departement"] = _departement(raw) if raw else None
    if raw and out["departement"] is None:
        bad.append(
            (
                f"{raw[:20]!r} is not a département code: use e.g. 01, 33, 2A, 974, or leave it empty",
                f"« {raw[:20]} » n'est pas un code de département : utilisez par exemple 01, 33, 2A, 974, "
                "ou laissez vide",
            )
        )
    consent = normalise_header(cells.get("consentement", ""))
    if consent in _YES:
        out["consent"] = True
    elif consent in _NO:
        out["consent"] = False
    else:
        bad.append(
            (
                "consent must be oui or non (or empty: non)",
                "le consentement vaut oui ou non (vide : non)",
            )
        )
    return out, bad
