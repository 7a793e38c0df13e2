"""programme-dashboard: every artifact of the dashboard, published by one run, read back from the server."""

from __future__ import annotations

import json
from typing import Any

from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.dashboard import KEYS, programme_dashboard
from states.clock import parse_instant


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
    departements = {r["département"]: r for r in json.loads(str(by_key["dashboard-departements"].data))}
    assert (departements["86"]["contract_signed"], departements["86"]["région"]) == (1, "Nouvelle-Aquitaine")
    assert (departements["974"]["candidate_presented"], departements["974"]["région"]) == (1, "La Réunion")
    assert departements["total"]["total"] == 2
    attention = json.loads(str(by_key["dashboard-attention"].data))
    assert [r["département"] for r in attention] == ["974"]  # presented on 1 March: 15-day deadline passed
    money = json.loads(str(by_key["dashboard-money"].data))
    assert money[-1]["mois"] == "total" and money[-1]["engagé"] == "50\u00a0000,00\u00a0€"
    lifecycle = str(by_key["dashboard-lifecycle"].data)
    assert "```mermaid\nstateDiagram-v2" in lifecycle and "in_post --> tranches_paid: pay_final_tranche" in lifecycle
    assert "Dossiers : **2**" in str(by_key["dashboard-summary"].data)
