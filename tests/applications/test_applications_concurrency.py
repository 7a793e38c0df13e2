"""The envelope holds under concurrent committee decisions, taken by real processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from applying import Apps
from helpers import migrated_pg_database

from states.applications.views import get_application
from states.db import get_engine
from states.policy import Policy

CONUM = Path(sys.executable).with_name("conum")
PG_URL = os.environ.get("CONUM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
RIVALS = 4  # applications asking for 2 posts each, against an envelope of 5: two fit
#: The envelope the rivals race for: the national one, or their région's (the national one then roomy).
ENVELOPES = {
    "national": ("national_posts = 5\n", Policy(national_posts=5), "beyond the envelope of 5"),
    "regional": (
        'regional_posts = { "Nouvelle-Aquitaine" = 5 }\n',
        Policy(regional_posts={"Nouvelle-Aquitaine": 5}),
        "in Nouvelle-Aquitaine to",
    ),
}


def conum(url: str, env: dict[str, str], *args: object) -> subprocess.Popen[str]:
    argv = [str(CONUM), *map(str, args), "--db", url, "--json"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def race(url: str, tmp_path: Path, envelope: str = "national") -> None:
    text, rules, refusal = ENVELOPES[envelope]
    policy = tmp_path / "policy.toml"
    policy.write_text(text, encoding="utf-8")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CONUM_")}, "CONUM_CLOCK": "simulated"}
    env["CONUM_POLICY_FILE"] = str(policy)

    def done(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
        out, err = proc.communicate(timeout=120)
        return proc.returncode, out, err

    apps = Apps(get_engine(url), rules)
    ids = []
    for _ in range(RIVALS):
        ids.append(apps.submit(posts=2))
        apps.fire(ids[-1], "give_opinion", "2026-01-06T10:00", opinion="favourable")
    rivals = [
        conum(
            url,
            env,
            "application",
            "advance",
            app,
            "validate",
            "--set",
            "posts=2",
            "--set",
            "committee=C1",
            "--at",
            "2026-01-07T10:00",
        )
        for app in ids
    ]
    results = [done(p) for p in rivals]
    won = [r for r in results if r[0] == 0]
    lost = [r for r in results if r[0] != 0]
    assert len(won) == 2, results
    assert all(code == 1 and "rule: within_envelope" in err and refusal in err for code, _, err in lost), lost
    views = [get_application(get_engine(url), app) for app in ids]
    assert sum(v["posts_validated"] for v in views) == 4
    assert sorted(v["state"] for v in views) == ["prefet_reviewed"] * 2 + ["validated"] * 2


@pytest.mark.parametrize("envelope", sorted(ENVELOPES))
def test_envelope_holds_under_concurrent_decisions_on_sqlite(tmp_path: Path, db_url: str, envelope: str) -> None:
    race(db_url, tmp_path, envelope)


@pytest.fixture
def pg() -> Iterator[str]:
    with migrated_pg_database("conum_apps") as url:
        yield url


@pytest.mark.postgres
@pytest.mark.parametrize("envelope", sorted(ENVELOPES))
def test_envelope_holds_under_concurrent_decisions_on_postgresql(tmp_path: Path, pg: str, envelope: str) -> None:
    race(pg, tmp_path, envelope)
