"""Loading the national platform's exports: all rows or none, every bad line reported, hostile content refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import snapshot
from sqlalchemy import Engine
from sqlmodel import select
from typer.testing import CliRunner

from states import imports
from states.applications.models import Application, ApplicationHistory
from states.applications.rules import luhn_ok
from states.cli import app
from states.db import read_session, write_session
from states.errors import NotAllowed
from states.models import Candidate, Structure


def siret(n: int) -> str:
    """A valid SIRET (Luhn key) made from ``n``."""
    base = f"{n:013d}"
    return next(base + str(k) for k in range(10) if luhn_ok(base + str(k)))


STRUCTURES = (
    "\ufeffNom de la structure;SIRET;Département;Nombre de postes;Type;Courriel\n"
    f"Mairie de Bègles;{siret(1)};33;2;publique;contact@begles.fr\n"
    f'"Association ""Clic"" ; Ajaccio";{siret(2)};2a;1;privée;\n'
    f"Médiathèque de Bourg;{siret(3)};1;3;;\n"
)
CANDIDATES = (
    "nom,courriel,departement,consentement\nCamille Durand,camille@exemple.fr,86,oui\nLouis Martin,louis@exemple.fr,,\n"
)


def load(engine: Engine, text: str | bytes, kind: imports.Kind, *, dry_run: bool = False) -> imports.Report:
    content = text.encode("utf-8") if isinstance(text, str) else text
    with write_session(engine) as s:
        return imports.load(s, content, kind, dry_run=dry_run)


def refused(engine: Engine, text: str | bytes, kind: imports.Kind) -> imports.Report:
    """The file is refused whole and the database is untouched; return the report of its problems."""
    before = snapshot(engine)
    with pytest.raises(imports.ImportRefused) as caught:
        load(engine, text, kind)
    assert snapshot(engine) == before
    return caught.value.report


def lines(report: imports.Report) -> list[int]:
    return [p.line for p in report.problems]


def test_structures_are_imported_with_their_siret_and_recorded_as_imported(engine: Engine) -> None:
    report = load(engine, STRUCTURES, "structures")
    assert report.ok and report.rows == 3 and report.delimiter == ";"
    with read_session(engine) as s:
        rows = {r.id: r for r in s.exec(select(Structure)).all()}
        apps = {a.structure_id: a for a in s.exec(select(Application)).all()}
        history = s.exec(select(ApplicationHistory)).all()
    assert sorted(rows) == report.created
    by_name = {r.name: r for r in rows.values()}
    assert by_name['Association "Clic" ; Ajaccio'].departement == "2A"
    assert by_name['Association "Clic" ; Ajaccio'].kind == "private"
    assert by_name["Médiathèque de Bourg"].departement == "01"  # the spreadsheet's lost leading zero
    assert by_name["Mairie de Bègles"].email == "contact@begles.fr" and by_name["Mairie de Bègles"].posts == 2
    assert {apps[i].siret for i in rows} == {siret(1), siret(2), siret(3)}
    assert {h.event for h in history} == {"import"} and len(history) == 3


def test_candidates_are_imported_with_a_comma_separated_file(engine: Engine) -> None:
    report = load(engine, CANDIDATES, "candidates")
    assert report.ok and report.delimiter == ","
    with read_session(engine) as s:
        found = {c.email: c for c in s.exec(select(Candidate)).all()}
    assert found["camille@exemple.fr"].consent is True and found["camille@exemple.fr"].departement == "86"
    assert found["louis@exemple.fr"].consent is False and found["louis@exemple.fr"].departement is None


def test_a_dry_run_reports_what_would_be_added_and_writes_nothing(engine: Engine) -> None:
    before = snapshot(engine)
    report = load(engine, STRUCTURES, "structures", dry_run=True)
    assert report.ok and len(report.values) == 3 and report.created == []
    assert snapshot(engine) == before
    text = imports.report_markdown(report)
    assert "essai à blanc" in text and "3 structures seraient ajoutés" in text


def test_every_bad_line_is_reported_at_once_with_its_number_and_nothing_is_imported(engine: Engine) -> None:
    text = (
        "nom;siret;departement;postes\n"
        f"Bonne;{siret(10)};33;1\n"
        f'=HYPERLINK("http://x");{siret(11)};33;1\n'  # line 3: formula
        "Mauvais SIRET;12345678901234;33;1\n"  # line 4: check key
        f"Sans département;{siret(12)};99;1\n"  # line 5
        f"Sans poste;{siret(13)};33;0\n"  # line 6
        f"{'x' * 5000};{siret(14)};33;1\n"  # line 7: too long
        f"Bonne aussi;{siret(10)};33;1\n"  # line 8: same SIRET as line 2
    )
    report = refused(engine, text, "structures")
    assert lines(report) == [3, 4, 5, 6, 7, 8]
    reasons = {p.line: p.en for p in report.problems}
    assert "formula" in reasons[3] and "check key" in reasons[4] and "département" in reasons[5]
    assert "from 1 to" in reasons[6] and "5000 characters" in reasons[7] and "line 2" in reasons[8]


def test_a_siret_already_registered_is_refused(engine: Engine) -> None:
    load(engine, STRUCTURES, "structures")
    again = f"nom;siret;departement;postes\nAutre;{siret(20)};33;1\nDoublon;{siret(2)};75;1\n"
    report = refused(engine, again, "structures")
    assert lines(report) == [3] and "already registered" in report.problems[0].en
    assert "déjà enregistré" in report.problems[0].fr


def test_a_candidate_already_in_the_pool_or_twice_in_the_file_is_refused(engine: Engine) -> None:
    load(engine, CANDIDATES, "candidates")
    text = "nom;courriel\nNouveau;nouveau@exemple.fr\nCamille;CAMILLE@exemple.fr\nDeux;nouveau@exemple.fr\n"
    report = refused(engine, text, "candidates")
    assert lines(report) == [3, 4]


def test_markup_is_stored_as_typed_and_shown_inert_in_the_report(engine: Engine) -> None:
    name = "<img src=x onerror=alert(1)> [lien](http://evil) | col"
    report = load(engine, f'nom;courriel\n"{name}";a@exemple.fr\n', "candidates", dry_run=True)
    assert report.ok
    text = imports.report_markdown(report)
    assert "<img" not in text and "](http" not in text and "\\| col" in text
    load(engine, f'nom;courriel\n"{name}";a@exemple.fr\n', "candidates")
    with read_session(engine) as s:
        assert s.exec(select(Candidate.name)).one() == name


def test_a_bad_line_is_escaped_in_the_french_report(engine: Engine) -> None:
    report = refused(engine, 'nom;courriel\n"| ok | <b>";pas-une-adresse<script>\n', "candidates")
    text = imports.report_markdown(report)
    assert "<script>" not in text and "| ligne 2 |" in text and "Rien n'a été importé" in text


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"\xef\xbb\xbf\n\n", "empty"),
        (b"nom;courriel\n", "header but no rows"),
        (b"name;mail\nA;a@b.fr\n", "lacks the column(s) nom"),
        (b"nom;nom;courriel\nA;B;a@b.fr\n", "appears twice"),
    ],
)
def test_files_without_rows_or_header_are_refused_with_a_reason(engine: Engine, content: bytes, expected: str) -> None:
    report = refused(engine, content, "candidates")
    assert expected in report.problems[0].en and report.problems[0].fr


def test_a_file_not_in_utf8_is_refused_with_what_to_do(engine: Engine) -> None:
    latin1 = "nom;courriel\nHélène Dupré;helene@exemple.fr\n".encode("latin-1")
    before = snapshot(engine)
    with pytest.raises(imports.BadInput, match=r"not UTF-8 text \(invalid byte at line 2\).*CSV UTF-8"):
        load(engine, latin1, "candidates")
    assert snapshot(engine) == before


def test_a_line_with_too_few_fields_and_broken_quotes_are_reported(engine: Engine) -> None:
    text = 'nom;courriel;departement\nA;a@exemple.fr;33\nB\n"C;c@exemple.fr;33\n'
    report = refused(engine, text, "candidates")
    assert lines(report)[0] == 3 and "field(s)" in report.problems[0].en
    assert any("CSV" in p.en for p in report.problems[1:])


def test_control_characters_and_spreadsheet_prefixes_are_refused(engine: Engine) -> None:
    text = 'nom;courriel\n"Ligne\nbrisée";a@exemple.fr\n+33 Tel;b@exemple.fr\n@SUM(A1);c@exemple.fr\n'
    report = refused(engine, text, "candidates")
    assert lines(report) == [2, 4, 5]  # the quoted line break makes line 2 span two lines


def test_only_admin_imports(engine: Engine) -> None:
    with write_session(engine) as s, pytest.raises(NotAllowed, match="only admin"):
        imports.load(s, CANDIDATES.encode(), "candidates", actor="system")


# ---------------------------------------------------------------- the command


def test_conum_import_dry_run_then_import(db_url: str, engine: Engine, tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "structures.csv"
    path.write_text(STRUCTURES, encoding="utf-8")
    dry = runner.invoke(app, ["import", "structures", str(path), "--dry-run", "--json", "--db", db_url])
    assert dry.exit_code == 0, dry.stderr
    body = json.loads(dry.stdout)
    assert body["ok"] and body["created"] == [] and body["rows"] == 3
    with read_session(engine) as s:
        assert s.exec(select(Structure)).all() == []
    done = runner.invoke(app, ["import", "structures", str(path), "--json", "--db", db_url])
    assert done.exit_code == 0, done.stderr
    assert len(json.loads(done.stdout)["created"]) == 3


def test_conum_import_refuses_a_bad_file_on_one_line_and_changes_nothing(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "candidats.csv"
    path.write_text("nom;courriel\nA;a@exemple.fr\nB;pas-une-adresse\n=1+1;c@exemple.fr\n", encoding="utf-8")
    before = snapshot(engine)
    res = CliRunner().invoke(app, ["import", "candidates", str(path), "--db", db_url])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "line 3:" in res.stderr and "line 4:" in res.stderr
    assert "nothing was imported" in res.stderr
    assert snapshot(engine) == before
    dry = CliRunner().invoke(app, ["import", "candidates", str(path), "--dry-run", "--json", "--db", db_url])
    assert dry.exit_code == 2
    assert [p["line"] for p in json.loads(dry.stdout)["problems"]] == [3, 4]


def test_conum_import_refuses_an_unknown_kind_and_a_missing_file(db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["import", "people", str(tmp_path / "x.csv"), "--db", db_url])
    assert res.exit_code == 2 and "structures" in res.stderr
    res = runner.invoke(app, ["import", "candidates", str(tmp_path / "none.csv"), "--db", db_url])
    assert res.exit_code == 4 and "cannot read" in res.stderr


def test_conum_structure_add_takes_a_siret_once(db_url: str, engine: Engine) -> None:
    runner = CliRunner()
    args = ["structure", "add", "--name", "M", "--departement", "33", "--posts", "1", "--db", db_url]
    assert runner.invoke(app, [*args, "--siret", siret(5)]).exit_code == 0
    again = runner.invoke(app, [*args, "--siret", siret(5)])
    assert again.exit_code == 2 and "already registered" in again.stderr
    with read_session(engine) as s:
        assert len(s.exec(select(Structure)).all()) == 1


def test_the_examples_of_the_documentation_import_as_they_are(engine: Engine) -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "import.md").read_text(encoding="utf-8")
    structures, candidates = re.findall(r"```csv\n(.*?)```", doc, flags=re.S)
    assert load(engine, structures, "structures").created and load(engine, candidates, "candidates").created
    with read_session(engine) as s:
        assert len(s.exec(select(Structure)).all()) == 3 and len(s.exec(select(Candidate)).all()) == 2


def test_conum_import_refuses_a_windows_encoded_export_with_what_to_do(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "candidats.csv"
    path.write_bytes("nom;courriel\r\nHélène Dupré;helene@exemple.fr\r\n".encode("cp1252"))
    res = CliRunner().invoke(app, ["import", "candidates", str(path), "--db", db_url])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "not UTF-8" in res.stderr and "CSV UTF-8" in res.stderr
