"""programme-dashboard: every artifact of the dashboard, published by one run, read back from the server."""

from __future__ import annotations

import json
import re
from typing import Any

from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.dashboard import KEYS, programme_dashboard
from states.clock import parse_instant
from states.lifecycle import EVENTS, State


def test_a_dashboard_run_publishes_every_table_and_the_lifecycle(world: Any, conum_env: Any) -> None:
    world.signed(structure=world.structure(departement="86"))
    world.present(world.structure(departement="974"), world.candidate(), at="2026-03-01T10:00")

    state = programme_dashboard(at=parse_instant("2026-03-20T10:00"), return_state=True)

    assert state.is_completed()
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    by_key = {a.key: a for a in artifacts}
    assert set(by_key) == set(KEYS)
    departements = {r["dép."]: r for r in json.loads(str(by_key["dashboard-departements"].data))}
    steps = {r["dép."]: r for r in json.loads(str(by_key["dashboard-departements-etapes"].data))}
    assert (steps["86"]["signé"], departements["86"]["nom"]) == (1, "Vienne")
    assert (steps["974"]["présenté"], departements["974"]["en retard"]) == (1, 1)
    assert departements["total"]["en cours"] == 2
    regions = {r["région"]: r for r in json.loads(str(by_key["dashboard-regions"].data))}
    assert (regions["La Réunion"]["en retard"], regions["Nouvelle-Aquitaine"]["en retard"]) == (1, 0)
    closed = {r["dép."]: r for r in json.loads(str(by_key["dashboard-departements-clos"].data))}
    assert (closed["total"]["clos"], departements["total"]["total"]) == (0, 2)
    attention = json.loads(str(by_key["dashboard-attention"].data))
    assert [r["dép."] for r in attention] == ["974"]  # presented on 1 March: 15-day deadline passed
    money = json.loads(str(by_key["dashboard-money"].data))
    assert money[-1]["mois"] == "total" and money[-1]["engagé"] == "50\u00a0000,00\u00a0€"
    lifecycle = str(by_key["dashboard-lifecycle"].data)
    assert "```mermaid\nstateDiagram-v2" in lifecycle and ": Versement de la dernière tranche" in lifecycle
    assert "Dossiers : **2**" in str(by_key["dashboard-summary"].data)


#: Raw codes an agent must never read: every state and event of the lifecycle.
CODES = re.compile(
    r"\b(" + "|".join(sorted({s.value for s in State} | {e.name for e in EVENTS}, key=len)[::-1]) + r")\b"
)
#: An instant as the code writes it: ISO date-time, seconds fractions or an offset.
RAW_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T|\d:\d{2}:\d{2}\.\d|[+-]\d{2}:\d{2}\b")


def test_what_an_agent_reads_has_no_raw_codes_no_microseconds_and_narrow_tables(world: Any, conum_env: Any) -> None:
    in_training = world.signed(structure=world.structure(departement="86"))
    world.fire(in_training, "start_training", "2026-04-02T10:00", date="2026-04-01")
    contacted = world.present(world.structure(departement="974"), world.candidate(), at="2026-03-01T10:00")
    world.fire(contacted, "select", "2026-03-02T10:00")
    world.fire(contacted, "contact_training_org", "2026-03-03T10:00", org=str(world.org))
    declined = world.present(world.structure(departement="2A"), world.candidate(), at="2026-03-01T10:00")
    world.fire(declined, "decline", "2026-03-02T10:00", reason="profil éloigné")

    state = programme_dashboard(at=parse_instant("2026-04-20T08:00:00.123456+00:00"), return_state=True)

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    for artifact in artifacts:
        shown = f"{artifact.description}\n{artifact.data}"
        assert not CODES.search(shown), (artifact.key, CODES.search(shown))
        assert not RAW_INSTANT.search(shown), (artifact.key, RAW_INSTANT.search(shown))
        if artifact.type == "table":
            rows = json.loads(str(artifact.data))
            assert all(len(r) <= 9 for r in rows), f"{artifact.key} has more than 9 columns"
    by_key = {a.key: a for a in artifacts}
    assert "20 avril 2026 à 10 h 00" in str(by_key["dashboard-summary"].description)  # Paris time, summer
