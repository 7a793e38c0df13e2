"""prefect.yaml: every deployment loads, takes the parameters its flow declares, and is scheduled as promised."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.schemas.schedules import CronSchedule
from prefect.events import DeploymentTriggerTypes
from prefect.flows import load_flow_from_entrypoint
from pydantic import TypeAdapter

from flows.actions import FLOW_NAMES
from flows.applications import FLOW_NAMES as APPLICATION_FLOW_NAMES
from flows.common import artifact_key
from states.applications.table import OPERATOR_EVENTS as APPLICATION_EVENTS
from states.lifecycle import OPERATOR_EVENTS

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
DEPLOYMENTS = {d["name"]: d for d in CONFIG["deployments"]}
EXPECTED = {
    "advance-case",
    "sweep-deadlines",
    "pay-tranches",
    "deliver-notifications",
    "programme-dashboard",
    "retention",
    "decide-case",
    "follow-cases",
    "add-structure",
    "add-candidate",
    "add-training-org",
    "present-candidate",
    "import-csv",
    "decide-application",
    *FLOW_NAMES.values(),
    *APPLICATION_FLOW_NAMES.values(),
}


def test_every_flow_of_the_project_is_deployed_to_the_conum_pool() -> None:
    assert set(DEPLOYMENTS) == EXPECTED
    assert {d["work_pool"]["name"] for d in DEPLOYMENTS.values()} == {"conum"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_entrypoint_loads_and_the_parameters_match_the_flow(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # entrypoints are relative to the project, as for the worker
    spec = DEPLOYMENTS[name]
    flow = load_flow_from_entrypoint(spec["entrypoint"])
    assert flow.name == name
    signature = inspect.signature(flow.fn).parameters
    given: dict[str, Any] = spec.get("parameters") or {}
    assert set(given) <= set(signature), f"{name}: prefect.yaml gives parameters the flow does not take"
    for key, value in given.items():
        assert value == signature[key].default, f"{name}: {key}={value!r} differs from the flow's default"
    required = {k for k, p in signature.items() if p.default is inspect.Parameter.empty}
    if spec.get("schedules") or spec.get("triggers"):
        assert required <= set(given), f"{name} runs unattended but lacks parameters {required - set(given)}"
    if required <= set(given):
        flow.validate_parameters(given)  # the values have the flow's types


def test_schedules_are_cron_in_paris_time() -> None:
    expected = {
        "sweep-deadlines": "0 * * * *",
        "pay-tranches": "0 6 * * *",
        "deliver-notifications": "*/5 * * * *",
        "retention": "30 3 * * *",
    }
    for name, spec in DEPLOYMENTS.items():
        for schedule in spec.get("schedules") or []:
            CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
            assert schedule["timezone"] == "Europe/Paris"
        if name in expected:
            assert [s["cron"] for s in spec["schedules"]] == [expected[name]]
    assert "schedules" not in DEPLOYMENTS["advance-case"]  # operator actions only
    assert DEPLOYMENTS["programme-dashboard"]["schedules"][0]["cron"].endswith("* * * *")  # hourly


def test_every_operator_event_of_a_case_or_application_triggers_the_delivery() -> None:
    [trigger] = DEPLOYMENTS["deliver-notifications"]["triggers"]
    TypeAdapter(DeploymentTriggerTypes).validate_python(dict(trigger))

    def matches(pattern: str, value: str) -> bool:  # Prefect's rule: a trailing * matches any suffix
        return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern

    resources = trigger["match"]["prefect.resource.id"]
    for kind, events in (("case", OPERATOR_EVENTS), ("application", APPLICATION_EVENTS)):
        for event in events:
            assert any(matches(p, f"conum.{kind}.{event}") for p in trigger["expect"])
        assert any(matches(p, f"conum.{kind}.12") for p in resources)


def test_artifact_keys_built_from_data_are_ones_prefect_accepts() -> None:
    """An invalid key fails the whole run, so keys made from names are cleaned first."""
    assert artifact_key("Sweep", "2026-03-01T10:00", "Île de France") == "sweep-2026-03-01t10-00-le-de-france"
    with pytest.raises(ValueError, match="letter or digit"):
        artifact_key("--", "…")
