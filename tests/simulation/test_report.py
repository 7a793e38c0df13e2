"""The report: every chart inline, the headline figures as computed, nothing external; it renders offline."""

from __future__ import annotations

import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from states.applications.rules import GUARDS as APPLICATION_GUARDS
from states.rules import GUARDS
from states.simulation import CHARTS, Outcome, headline
from states.simulation.report import ALL_RULE_LABELS


class Page(HTMLParser):
    """The parts of the report a reader relies on: charts, headline figures, external references."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.figure: str | None = None
        self.svg_in: set[str] = set()
        self.kpi: str | None = None
        self.kpis: dict[str, str] = {}
        self.in_dd = False
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "figure":
            self.figure = a.get("id")
        if tag == "svg" and self.figure:
            self.svg_in.add(self.figure)
        if tag == "div" and a.get("data-key"):
            self.kpi = a["data-key"]
        if tag == "dd" and self.kpi:
            self.in_dd = True
            self.kpis[self.kpi] = ""
        for key in ("src", "href"):
            value = a.get(key) or ""
            if value.startswith(("http:", "https:", "//")):
                self.external.append(value)
        if tag in ("script", "link", "img", "iframe"):
            self.external.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self.figure = None
        if tag == "dd":
            self.in_dd, self.kpi = False, None

    def handle_data(self, data: str) -> None:
        if self.in_dd and self.kpi:
            self.kpis[self.kpi] += data


def test_report_has_every_chart_and_the_headline_figures(first: Outcome) -> None:
    html = first.report.read_text(encoding="utf-8")
    page = Page()
    page.feed(html)
    assert page.svg_in == {f"chart-{key}" for key in CHARTS}
    expected = {h.key: h.value for h in headline(first.figures)}
    assert page.kpis == expected
    assert page.kpis["contrats-signes"] == str(first.figures.reached["contract_signed"])
    assert page.external == [], "the report must read offline"
    assert '<html lang="fr">' in html and "Rapprochement" in html


def test_every_rule_that_can_refuse_an_action_has_a_french_label() -> None:
    assert set(GUARDS) | set(APPLICATION_GUARDS) | {"lifecycle", "conflict"} <= set(ALL_RULE_LABELS)


# ---------------------------------------------------------------- in a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HEADLESS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium)")
def test_report_renders_offline_in_headless_chromium(first: Outcome, tmp_path: Path) -> None:
    common = [CHROMIUM or "", *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}"]
    url = first.report.resolve().as_uri()
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    assert dom.stdout.count("<svg") >= len(CHARTS), "the charts did not reach the rendered page"
    assert "Rapprochement" in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1300,2000", url], capture_output=True, timeout=120, check=True
    )
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1300, 2000)
    assert len(png) > 50_000, "the screenshot is nearly blank: the page did not render"


class Departements(HTMLParser):
    """The table of départements: each header's measure and label, each row's cells by measure."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.cell: str | None = None
        self.header = False
        self.labels: dict[str, str] = {}
        self.rows: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("id") == "echeances-departements":
            self.inside = True
        if not self.inside:
            return
        if tag == "tr" and a.get("data-departement"):
            self.rows.append({})
        if tag in ("th", "td") and a.get("data-measure"):
            self.cell, self.header = a["data-measure"], tag == "th"
            (self.labels if self.header else self.rows[-1])[self.cell or ""] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        if tag in ("th", "td"):
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.inside and self.cell:
            target = self.labels if self.header else self.rows[-1]
            target[self.cell] += data


def _number(text: str) -> float:
    return float(text.replace("\u00a0", "").replace(" ", "").replace(",", "."))


def test_each_rate_of_the_report_is_computed_from_the_count_shown_beside_it(first: Outcome) -> None:
    page = Departements()
    page.feed(first.report.read_text(encoding="utf-8"))
    assert page.rows, "the table of départements is empty"
    assert page.labels["time_outs"] == "Dossiers expirés (délai final dépassé)"
    assert page.labels["missed"] == "Échéances manquées (escalades + expirations)"
    assert page.labels["missed_per_100"] == "Échéances manquées pour 100 dossiers"
    assert len(set(page.labels.values())) == len(page.labels), "two columns carry the same name"
    for row in page.rows:
        cases, missed = _number(row["cases"]), _number(row["missed"])
        assert missed == sum(_number(row[k]) for k in ("prefet", "anct", "time_outs")), row
        assert _number(row["missed_per_100"]) == round(100 * missed / cases, 1), row
