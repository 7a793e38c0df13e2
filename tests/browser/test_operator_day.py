"""An operator's day in the Prefect UI, in a real browser (Debian's chromium driven by Playwright).

One Conum as ``make up`` starts it (``scripts/up.sh``: a Prefect server with basic authentication, the
project's deployments, a worker, the small demo programme) on a free port of 4460-4469, with its own
folder and database; ``scripts/down.sh`` stops it. The browser logs in, runs an action from its form,
answers a suspended decision of the inbox, reads a case's page and sees a refused run's French line.
Each screen is saved into ``docs/screenshots/`` (the README's "For operators" shows them).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from states.db import get_engine, read_session
from states.models import Case

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PORTS = range(4460, 4470)
#: How long a flow run may take to reach a state on a loaded machine (worker poll, process start, imports).
RUN_TIMEOUT = 480.0

playwright = pytest.importorskip("playwright.sync_api", reason="the dev extra installs playwright")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
]


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 4460-4469")


@dataclass
class Conum:
    """A running Conum: its UI's address, its credential and its database."""

    url: str
    auth: str
    database: str
    run: Path

    def api(self, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.url}/api{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": "Basic " + base64.b64encode(self.auth.encode()).decode(),
                "Content-Type": "application/json",
            },
            method="POST" if body is not None else "GET",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def deployment(self, name: str) -> str:
        return str(self.api(f"/deployments/name/{name}/{name}")["id"])

    def runs(self, **flow_runs: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.api(
            "/flow_runs/filter", {"flow_runs": flow_runs, "sort": "EXPECTED_START_TIME_DESC", "limit": 50}
        )
        return found

    def wait(self, what: str, find: Callable[[], Any], timeout: float = RUN_TIMEOUT) -> Any:
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            found = find()
            if found:
                return found
            time.sleep(1)
        raise AssertionError(f"waited {timeout:.0f} s for {what}; see {self.run}/prefect-worker.log")

    def run_of(self, deployment: str, dossier: int) -> dict[str, Any] | None:
        """The latest run of a deployment for a case."""
        dep = self.deployment(deployment)
        runs = self.api(
            "/flow_runs/filter",
            {"deployments": {"id": {"any_": [dep]}}, "sort": "EXPECTED_START_TIME_DESC", "limit": 20},
        )
        return next((r for r in runs if r["parameters"].get("dossier") == dossier), None)

    def ended(self, run_id: str) -> dict[str, Any]:
        """Wait for a run to reach a final state; return it."""

        def final() -> dict[str, Any] | None:
            run: dict[str, Any] = self.api(f"/flow_runs/{run_id}")
            return run if run["state_type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"} else None

        ended: dict[str, Any] = self.wait(f"run {run_id} to end", final)
        return ended

    def logs(self, run_id: str) -> list[str]:
        rows = self.api("/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})
        return [r["message"] for r in rows]

    def state(self, case_id: int) -> str:
        with read_session(get_engine(self.database)) as session:
            case = session.get(Case, case_id)
            assert case is not None
            return case.state


@pytest.fixture(scope="module")
def conum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Conum]:
    run = tmp_path_factory.mktemp("up")
    port = _free_port()
    database = f"sqlite:///{run}/conum.db"
    env = {
        **os.environ,
        "CONUM_RUN_DIR": str(run),
        "PREFECT_PORT": str(port),
        "CONUM_DATABASE_URL": database,
        "WAIT": "10",
    }
    env.pop("PREFECT_API_URL", None)
    try:
        up = subprocess.run(["bash", "scripts/up.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield Conum(f"http://127.0.0.1:{port}", (run / "api-auth").read_text().strip(), database, run)
    finally:
        subprocess.run(["bash", "scripts/down.sh"], cwd=ROOT, env=env, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def page(conum: Conum) -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="fr-FR")
        context.set_default_timeout(60_000)
        yield context.new_page()
        browser.close()


def shot(page: Any, name: str, full: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


def submit(page: Any, done: Callable[[], None], what: str) -> None:
    """Press a form's Submit until the UI shows it was taken (``done`` returns without raising).

    Right after a page has loaded, Prefect's UI may still be wiring the form and drop the first press;
    a form whose press was taken is gone, so pressing again never sends anything twice.
    """
    # Prefect's toasts (bottom right, over the Submit button) would take the press: let it through them
    page.add_style_tag(content="#prefect-design-toast-app { pointer-events: none !important; }")
    for _ in range(3):
        button = page.get_by_role("button", name="Submit").last
        if button.count() and button.is_visible():
            try:
                button.click(timeout=10_000)
            except Exception:  # something of Prefect's UI still lies over it: press it as the keyboard would
                button.dispatch_event("click")
        try:
            done()
            return
        except Exception:
            continue
    shot(page, "submit-refused")
    raise AssertionError(f"the {what} was not accepted: {page.inner_text('body')[:1500]}")


def submit_run_form(page: Any) -> None:
    """Submit a deployment's run form; Prefect's UI then leaves the form for the deployment's page."""
    submit(
        page,
        lambda: page.wait_for_url(lambda url: not url.rstrip("/").endswith("/run"), timeout=20_000),
        "run form",
    )


def fill_form(page: Any, values: list[tuple[Any, str]]) -> None:
    """Fill a run form once the UI has put its defaults in (a value typed earlier would be overwritten)."""
    page.wait_for_load_state("networkidle")
    for field, value in values:
        field.fill(value)
        field.press("Tab")
        playwright.expect(field).to_have_value(value)


def fields(page: Any) -> list[str]:
    """The labels of a run form's fields (Prefect's own, the run's name and validation, left out)."""
    labels = [" ".join(label.split()) for label in page.locator("label").all_inner_texts()]
    return [label for label in labels if label and label not in {"Run Name", "Validate parameters"}]


def test_unauthenticated_calls_are_refused(conum: Conum) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{conum.url}/api/deployments/filter", data=b"{}", timeout=30)
    assert refused.value.code == 401


def test_an_operators_day(conum: Conum, page: Any) -> None:
    # 1. the login prompt; the whole line of the credential file
    page.goto(f"{conum.url}/dashboard")
    prompt = page.get_by_placeholder("admin:pass")
    prompt.wait_for()
    shot(page, "01-login")
    prompt.fill(conum.auth)
    page.get_by_role("button", name="Login").click()
    prompt.wait_for(state="detached")

    # 2. an action's form: its own fields only, French titles, drop-downs and date pickers
    page.goto(f"{conum.url}/deployments/deployment/{conum.deployment('sign-contract')}/run")
    page.get_by_text("Type de contrat", exact=True).wait_for()
    assert fields(page) == [
        "dossier",
        "donnees",
        "Type de contrat",
        "Début du contrat",
        "Salaire brut mensuel (€)",
        "Fin du contrat (Optional)",
        "acteur (Optional)",
    ]
    assert page.get_by_text("Signer le contrat : les champs marqués", exact=False).count() == 1
    shot(page, "02-action-form-sign-contract")

    # 3. an action run from its form: case 1's candidate is selected
    page.goto(f"{conum.url}/deployments/deployment/{conum.deployment('select-candidate')}/run")
    page.get_by_text("Numéro du dossier", exact=False).wait_for()
    assert fields(page) == ["dossier", "acteur (Optional)"]
    fill_form(page, [(page.get_by_role("spinbutton").first, "1")])
    shot(page, "03-action-form-select-candidate")
    submit_run_form(page)
    run = conum.wait("the select-candidate run", lambda: conum.run_of("select-candidate", 1))
    done = conum.ended(run["id"])
    assert done["state_type"] == "COMPLETED", done["state"]
    assert conum.state(1) == "selected"
    page.goto(f"{conum.url}/runs/flow-run/{run['id']}")
    page.get_by_text("Retenir le candidat : Candidat présenté → Candidat retenu", exact=False).first.wait_for()
    assert "case:1" in done["tags"]
    shot(page, "04-action-run-completed")

    # 4. the inbox: suspended decisions; case 2's is answered from its form
    def decision() -> dict[str, Any] | None:
        runs = conum.runs(tags={"all_": ["decision", "case:2"]}, state={"type": {"any_": ["PAUSED"]}})
        return runs[0] if runs else None

    waiting = conum.wait("case 2's suspended decision run", decision)
    page.goto(f"{conum.url}/runs?state=Suspended")
    page.get_by_text("Décision dossier 2 : retenir ou décliner le candidat", exact=False).first.wait_for()
    shot(page, "05-inbox-suspended-decisions")
    page.get_by_text("Décision dossier 2 : retenir ou décliner le candidat", exact=False).first.click()
    page.wait_for_url(f"**/runs/flow-run/{waiting['id']}**")
    page.get_by_role("button", name="Resume").click()
    modal = page.locator(".p-modal")
    modal.get_by_text("Décision", exact=True).wait_for()
    choice = modal.locator("fieldset button").first  # the drop-down of the decision
    choice.click()
    choice.press("ArrowDown")
    page.get_by_role("option", name="retenir").click()
    modal.locator("textarea").last.fill("structure:1")
    shot(page, "06-decision-form")
    submit(page, lambda: modal.wait_for(state="detached", timeout=20_000), "decision form")
    answered = conum.ended(waiting["id"])
    assert answered["state_type"] == "COMPLETED", answered["state"]
    assert conum.state(2) == "selected"
    page.goto(f"{conum.url}/runs/flow-run/{waiting['id']}")
    page.get_by_text("Retenir le candidat : Candidat présenté → Candidat retenu", exact=False).first.wait_for()
    shot(page, "07-decision-answered")

    # 5. the case's page, refreshed by the answer
    pages = conum.api(
        "/artifacts/filter", {"artifacts": {"key": {"any_": ["case-2"]}}, "sort": "CREATED_DESC", "limit": 10}
    )
    # the answer published the page; a follow-cases run may have refreshed it since
    assert any(p["flow_run_id"] == waiting["id"] for p in pages), [p["flow_run_id"] for p in pages]
    artifact = pages[0]
    page.goto(f"{conum.url}/artifacts/artifact/{artifact['id']}")
    page.get_by_text("Dossier n° 2", exact=False).first.wait_for()
    body = page.locator("body").inner_text()
    assert "Candidat retenu" in body and "Historique" in body, body[:2000]
    shot(page, "08-case-page", full=True)

    # 6. a refused action: structure 1 cannot select the candidate presented to structure 2
    page.goto(f"{conum.url}/deployments/deployment/{conum.deployment('select-candidate')}/run")
    page.get_by_text("Numéro du dossier", exact=False).wait_for()
    fill_form(page, [(page.get_by_role("spinbutton").first, "3"), (page.locator("textarea").last, "structure:1")])
    submit_run_form(page)
    refused_run = conum.wait("the refused run", lambda: conum.run_of("select-candidate", 3))
    refused = conum.ended(refused_run["id"])
    assert refused["state_type"] == "FAILED", refused["state"]
    message = refused["state"]["message"]
    assert message.startswith("Refusé (règle actor_may_fire) : ") and "\n" not in message, message
    assert not any("Traceback" in line for line in conum.logs(refused_run["id"]))
    assert conum.state(3) == "candidate_presented"
    page.goto(f"{conum.url}/runs/flow-run/{refused_run['id']}")
    page.get_by_text("Refusé (règle actor_may_fire)", exact=False).first.wait_for()
    shot(page, "09-refused-run")
