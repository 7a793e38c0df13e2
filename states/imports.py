"""Loading the national platform's exports: structures and candidates from a CSV file.

The file is checked whole before anything is written: every bad row is reported with its line number
and reason, several at once, and one bad row is enough for nothing to be imported (``load`` raises
``ImportRefused`` and the caller's transaction writes nothing). A dry run checks the same way and
writes nothing either.

What the file may be: UTF-8 with or without a byte-order mark (anything else is refused with a clear
message), ``;`` or ``,`` between fields (read from the header line), French headers (accents, case
and spaces do not matter; ``docs/import.md`` lists them and their aliases). Every value is data: a
cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) is refused, as are
control characters and over-long fields; names with markup are stored as typed and escaped wherever
they are shown (``report_markdown``).

Each reason is given in English (the ``conum`` command) and in French (the report an operator reads
in the Prefect UI).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func
from sqlmodel import Session, col, select

from states.applications.models import Application
from states.errors import BadInput
from states.import_rows import (
    check_candidate,
    check_structure,
    normalise_header,
)
from states.labels import text as md
from states.models import Candidate
from states.registry import add_candidate, add_structure

Kind = Literal["structures", "candidates"]
KINDS: tuple[Kind, ...] = ("structures", "candidates")
#: What each kind is called in French (the import form and the report).
FRENCH_KIND = {"structures": "structures", "candidates": "candidats"}

#: A file larger than this is refused whole (split it): about 20 000 rows of an export.
MAX_BYTES = 4_000_000
#: At most this many data rows per file.
MAX_ROWS = 20_000
#: The CLI's one-line refusal quotes at most this many rows (the report lists them all).
QUOTED = 20


@dataclass(frozen=True)
class Column:
    """One column of an export: its header, the other headers accepted for it, and whether it is required."""

    name: str
    required: bool
    aliases: tuple[str, ...]
    help_fr: str


STRUCTURE_COLUMNS = (
    Column("nom", True, ("nom de la structure", "raison sociale", "structure"), "nom de la structure"),
    Column("siret", True, ("numero siret", "n siret"), "SIRET de l'établissement, 14 chiffres"),
    Column("departement", True, ("code departement", "dept"), "code du département : 01, 33, 2A, 974…"),
    Column("postes", True, ("nombre de postes", "postes attribues", "postes valides"), "postes attribués, 1 à 100"),
    Column("type", False, ("type de structure", "statut"), "publique (collectivité) ou privée (association)"),
    Column("courriel", False, ("email", "e mail", "mail", "adresse electronique"), "adresse de contact"),
)
CANDIDATE_COLUMNS = (
    Column("nom", True, ("nom complet", "prenom nom", "nom prenom", "candidat"), "prénom et nom du candidat"),
    Column("courriel", True, ("email", "e mail", "mail", "adresse electronique"), "adresse électronique"),
    Column("departement", False, ("code departement", "departement de residence", "dept"), "département de résidence"),
    Column("consentement", False, ("consent", "accord conservation"), "oui ou non (conservation plus longue)"),
)
COLUMNS: dict[str, tuple[Column, ...]] = {"structures": STRUCTURE_COLUMNS, "candidates": CANDIDATE_COLUMNS}


@dataclass(frozen=True)
class Problem:
    """Why one line (0: the whole file) cannot be imported, in English and in French."""

    line: int
    en: str
    fr: str


@dataclass
class Report:
    """What an import found in a file: its rows, its problems, and what was created (none on a dry run)."""

    kind: Kind
    dry_run: bool
    delimiter: str = ";"
    rows: int = 0
    problems: list[Problem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    #: the values of each good row, as checked (what would be created)
    values: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "rows": self.rows,
            "created": self.created,
            "ignored_columns": self.ignored_columns,
            "problems": [{"line": p.line, "reason": p.en} for p in self.problems],
        }

    def refusal(self) -> str:
        """One English line: how many lines are bad, the first of them, and what to do."""
        shown = "; ".join(_where_en(p) for p in self.problems[:QUOTED])
        more = f"; … and {len(self.problems) - QUOTED} more" if len(self.problems) > QUOTED else ""
        return (
            f"{len(self.problems)} problem(s) in the {self.kind} file, nothing was imported (rule: import): "
            f"{shown}{more}. Fix these lines and run again (--dry-run --json lists them all)"
        )

    def refusal_fr(self) -> str:
        """One French line for the run's state: how many problems, nothing imported, what to do."""
        return (
            f"Refusé (règle import) : {len(self.problems)} erreur(s) dans le fichier de {FRENCH_KIND[self.kind]}, "
            "rien n'a été importé : corrigez les lignes signalées dans le rapport de la run et relancez."
        )


class ImportRefused(BadInput):
    """The file has bad rows: nothing was imported. ``report`` lists them all."""

    rule = "import"

    def __init__(self, report: Report) -> None:
        super().__init__(report.refusal())
        self.report = report


def _where_en(p: Problem) -> str:
    return f"line {p.line}: {p.en}" if p.line else p.en


def _where_fr(p: Problem) -> str:
    return f"ligne {p.line}" if p.line else "fichier"


# ---------------------------------------------------------------- reading the file


def decode(content: bytes) -> str:
    """Return the file's text: UTF-8, its byte-order mark dropped; refuse any other encoding."""
    if len(content) > MAX_BYTES:
        raise BadInput(
            f"the file is {len(content)} bytes, more than {MAX_BYTES} (rule: import): split it into smaller files"
        )
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise BadInput(
            f"the file is not UTF-8 text (invalid byte at line {line}) (rule: import): "
            "save it as « CSV UTF-8 » and run again",
            rule="import",
        ) from None


def sniff(header: str) -> str:
    """Return the delimiter of a file from its header line: ``;`` or ``,``, whichever it uses."""
    return ";" if header.count(";") >= header.count(",") and ";" in header else ","


def _records(text: str, delimiter: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """Yield ``(line, fields, error)`` for each record; a record the CSV reader cannot read ends the file."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    last = 0
    while True:
        start = last + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, None, str(exc)
            return
        last = reader.line_num
        yield start, fields, None


def check(content: bytes, kind: Kind, *, dry_run: bool = True) -> Report:
    """Read and check a whole file without the database: every problem found, with its line."""
    if kind not in KINDS:
        raise BadInput(f"unknown import kind {kind!r}: use structures or candidates")
    report = Report(kind=kind, dry_run=dry_run)
    text = decode(content)
    if not text.strip():
        report.problems.append(
            Problem(
                0,
                "the file is empty: export it again with its header line",
                "le fichier est vide : exportez-le de nouveau avec sa ligne d'en-tête",
            )
        )
        return report
    first = text.lstrip("\r\n").splitlines()[0]
    report.delimiter = sniff(first)
    records = _records(text, report.delimiter)
    columns = COLUMNS[kind]
    header: dict[int, str] = {}
    for line, fields, error in records:
        if error is not None or fields is None:
            report.problems.append(
                Problem(line, f"the header cannot be read ({error})", f"l'en-tête est illisible ({error})")
            )
            return report
        if not any(f.strip() for f in fields):
            continue
        header = _map_header(fields, columns, report, line)
        break
    if not header or report.problems:
        if not report.problems:
            report.problems.append(Problem(0, "the file has no header line", "le fichier n'a pas de ligne d'en-tête"))
        return report
    checker = check_structure if kind == "structures" else check_candidate
    width = max(header) + 1
    for line, fields, error in records:
        if error is not None or fields is None:
            report.problems.append(
                Problem(
                    line,
                    f"the line cannot be read as CSV ({error}): check its quotes; the lines after it were not read",
                    f"la ligne n'est pas du CSV lisible ({error}) : vérifiez ses guillemets ; "
                    "les lignes suivantes n'ont pas été lues",
                )
            )
            break
        if not any(f.strip() for f in fields):
            continue
        report.rows += 1
        if report.rows > MAX_ROWS:
            report.problems.append(
                Problem(
                    line,
                    f"more than {MAX_ROWS} rows: split the file",
                    f"plus de {MAX_ROWS} lignes : découpez le fichier",
                )
            )
            break
        if len(fields) < width and any(header.get(i) for i in range(len(fields), width)):
            report.problems.append(
                Problem(
                    line,
                    f"the line has {len(fields)} field(s), the header {width}: check the separators",
                    f"la ligne a {len(fields)} champ(s), l'en-tête {width} : vérifiez les séparateurs",
                )
            )
            continue
        cells = {name: fields[i] if i < len(fields) else "" for i, name in header.items()}
        values, bad = checker(cells)
        for en, fr in bad:
            report.problems.append(Problem(line, en, fr))
        if not bad:
            report.values.append({"line": line, **values})
    if report.rows == 0 and not report.problems:
        report.problems.append(
            Problem(
                0,
                "the file has a header but no rows: nothing to import",
                "le fichier n'a qu'un en-tête : rien à importer",
            )
        )
    _duplicates_in_file(report)
    return report


def _map_header(fields: list[str], columns: tuple[Column, ...], report: Report, line: int) -> dict[int, str]:
    """Return the column of each position; record missing, repeated and unknown headers."""
    known = {normalise_header(a): c.name for c in columns for a in (c.name, *c.aliases)}
    found: dict[int, str] = {}
    for i, raw in enumerate(fields):
        name = known.get(normalise_header(raw))
        if name is None:
            if raw.strip():
                report.ignored_columns.append(raw.strip()[:60])
            continue
        if name in found.values():
            report.problems.append(
                Problem(
                    line,
                    f"column {name!r} appears twice in the header",
                    f"la colonne « {name} » figure deux fois dans l'en-tête",
                )
            )
        found[i] = name
    missing = [c.name for c in columns if c.required and c.name not in found.values()]
    if missing:
        report.problems.append(
            Problem(
                line,
                f"the header lacks the column(s) {', '.join(missing)} (separator read: {report.delimiter!r}): "
                "see docs/import.md for the headers",
                f"il manque à l'en-tête la ou les colonnes {', '.join(missing)} "
                f"(séparateur lu : « {report.delimiter} ») : "
                "voir la documentation de l'import pour les en-têtes",
            )
        )
    return found


def _duplicates_in_file(report: Report) -> None:
    key = "siret" if report.kind == "structures" else "email"
    seen: dict[str, int] = {}
    for row in report.values:
        value = str(row[key]).lower()
        if value in seen:
            label_en = "SIRET" if key == "siret" else "e-mail address"
            label_fr = "SIRET" if key == "siret" else "adresse électronique"
            report.problems.append(
                Problem(
                    row["line"],
                    f"{label_en} {row[key]} already appears at line {seen[value]} of the file: keep one of the two",
                    f"{label_fr} {row[key]} figure déjà ligne {seen[value]} du fichier : gardez l'une des deux lignes",
                )
            )
        else:
            seen[value] = row["line"]
    report.problems.sort(key=lambda p: p.line)


def _duplicates_in_database(session: Session, report: Report) -> None:
    if report.kind == "structures":
        sirets = [r["siret"] for r in report.values]
        known: set[str] = set()
        for chunk in _chunks(sirets):
            known |= {
                s for s in session.exec(select(Application.siret).where(col(Application.siret).in_(chunk))).all() if s
            }
        for row in report.values:
            if row["siret"] in known:
                report.problems.append(
                    Problem(
                        row["line"],
                        f"SIRET {row['siret']} is already registered: remove the line (the structure exists)",
                        f"le SIRET {row['siret']} est déjà enregistré : retirez la ligne (la structure existe)",
                    )
                )
    else:
        emails = [r["email"].lower() for r in report.values]
        known = set()
        for chunk in _chunks(emails):
            known |= set(
                session.exec(
                    select(func.lower(col(Candidate.email))).where(
                        func.lower(col(Candidate.email)).in_(chunk), col(Candidate.anonymised_at).is_(None)
                    )
                ).all()
            )
        for row in report.values:
            if row["email"].lower() in known:
                report.problems.append(
                    Problem(
                        row["line"],
                        f"a candidate with the address {row['email']} is already in the pool: remove the line",
                        f"un candidat d'adresse {row['email']} est déjà dans le vivier : retirez la ligne",
                    )
                )
    report.problems.sort(key=lambda p: p.line)


def _chunks(values: list[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def load(
    session: Session,
    content: bytes,
    kind: Kind,
    *,
    dry_run: bool = False,
    actor: str = "admin",
    at: datetime | None = None,
) -> Report:
    """Check a file against itself and the database, then (unless ``dry_run``) add every row.

    Raises ``ImportRefused`` when any row is bad and it is not a dry run: nothing is added, the caller's
    transaction (``db.write_session``) is rolled back. A dry run returns its report whatever it found.
    Structures are recorded as imported in their application's history, as ``conum structure add`` does.
    """
    from states.registry import _admin

    _admin(actor, kind)
    report = check(content, kind, dry_run=dry_run)
    if report.values:
        _duplicates_in_database(session, report)
    if dry_run:
        return report
    if not report.ok:
        raise ImportRefused(report)
    for row in report.values:
        if kind == "structures":
            new = add_structure(
                session,
                name=row["name"],
                departement=row["departement"],
                posts=row["posts"],
                kind=row["kind"],
                email=row["email"],
                siret=row["siret"],
                actor=actor,
                at=at,
            )
        else:
            new = add_candidate(
                session,
                name=row["name"],
                email=row["email"],
                departement=row["departement"],
                consent=row["consent"],
                actor=actor,
            )
        report.created.append(new)
    return report


# ---------------------------------------------------------------- the report an operator reads


def report_markdown(report: Report, source: str = "") -> str:
    """Return the report in French markdown: what was read, each problem with its line, what was done."""
    what = FRENCH_KIND[report.kind]
    mode = "essai à blanc (rien n'est écrit)" if report.dry_run else "import"
    lines = [f"# Import de {what} — {mode}", ""]
    if source:
        lines += [f"Fichier : {md(source)}", ""]
    lines += [
        f"- Lignes de données lues : **{report.rows}**",
        f"- Séparateur : « {report.delimiter} »",
        f"- Erreurs : **{len(report.problems)}**",
    ]
    if report.ignored_columns:
        lines.append(f"- Colonnes ignorées : {', '.join(md(c) for c in report.ignored_columns)}")
    lines.append("")
    if report.problems:
        lines += [
            "Rien n'a été importé : le fichier est refusé en entier dès qu'une ligne est fausse. "
            "Corrigez les lignes ci-dessous et relancez.",
            "",
            "| Ligne | Erreur |",
            "|---|---|",
            *(f"| {_where_fr(p)} | {md(p.fr)} |" for p in report.problems),
        ]
    elif report.dry_run:
        lines.append(
            f"Le fichier est correct : {len(report.values)} {what} seraient ajoutés. Relancez sans l'essai à blanc."
        )
        lines += _preview(report)
    else:
        lines.append(f"{len(report.created)} {what} ajoutés (n° {', '.join(map(str, report.created))}).")
    return "\n".join(lines) + "\n"


def _preview(report: Report, limit: int = 50) -> list[str]:
    if report.kind == "structures":
        head = ["", "| Ligne | Nom | SIRET | Dép. | Postes |", "|---|---|---|---|---|"]
        body = [
            f"| {r['line']} | {md(r['name'])} | {r['siret']} | {r['departement']} | {r['posts']} |"
            for r in report.values[:limit]
        ]
    else:
        head = ["", "| Ligne | Nom | Courriel | Dép. | Consentement |", "|---|---|---|---|---|"]
        body = [
            f"| {r['line']} | {md(r['name'])} | {md(r['email'])} | {r['departement'] or '—'} | "
            f"{'oui' if r['consent'] else 'non'} |"
            for r in report.values[:limit]
        ]
    more = ["", f"… et {len(report.values) - limit} autres."] if len(report.values) > limit else []
    return head + body + more
