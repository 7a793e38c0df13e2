"""simulate-programme: one parent flow run, one child run per simulated month, figures as artifacts."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pytest
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
from sqlmodel import Session, col, select

from flows.simulate import listening, simulate_programme
from states.db import get_engine
from states.models import History


def test_a_programme_is_one_parent_run_with_a_child_run_per_month(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the report path is relative, as the command's default
    url = f"sqlite:///{tmp_path / 'sim.db'}"
    seen: list[tuple[str, int]] = []
    announced: list[int] = []
    with listening(announced.append, lambda month, done: seen.append((month.month, done))):
        result = simulate_programme(posts=12, seed=4, database_url=url, report="out/report.html")

    assert result["ok"], result["reconciliation"]
    assert result["report"] == str(tmp_path / "out" / "report.html")
    assert Path(result["report"]).is_file()
    link = Artifact.get("simulation-report")
    assert link is not None and f"({Path(result['report']).as_uri()})" in str(link.data)
    assert announced and seen and [done for _, done in seen] == list(range(1, len(seen) + 1))
    months = [month for month, _ in seen]
    assert months[0] == "2026-01" and months == sorted(months)

    with get_client(sync_client=True) as client:
        parent = client.read_flow_run(UUID(result["flow_run_id"]))
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id]))
        )
    assert parent.state is not None and parent.state.is_completed()
    assert sorted(c.name for c in children) == [f"mois-{m}" for m in months]
    assert all(c.state is not None and c.state.is_completed() for c in children)

    # every action of the people is recorded with the run of its month
    with Session(get_engine(url)) as s:
        run_ids = set(s.exec(select(History.flow_run_id).where(col(History.actor) != "system")).all())
    assert run_ids and run_ids <= {str(c.id) for c in children}

    figures = Artifact.get("simulation-figures")
    assert figures is not None and figures.flow_run_id == parent.id
    rows = {row["cle"]: row["valeur"] for row in _table(figures.data)}
    assert rows == {h["key"]: h["value"] for h in result["headline"]}
    summary = Artifact.get("simulation-summary")
    assert summary is not None and "Rapprochement" in str(summary.data)


def _table(data: object) -> list[dict[str, str]]:
    import json

    rows = json.loads(data) if isinstance(data, str) else data
    assert isinstance(rows, list)
    return rows
