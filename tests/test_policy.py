"""Policy: the programme's defaults, and a TOML file that changes them without a code change."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from states import batch, config
from states.clock import parse_instant
from states.errors import PolicyError
from states.policy import Policy, load_policy
from states.views import get_case

THIRTY_DAYS = """
[deadlines.presented]
deadline_days = 30
steps = [
    { action = "remind", days = 20, level = 1 },
    { action = "time_out", days = 30 },
]
"""


def policy_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def steps(policy: Policy, clock: str) -> list[tuple[str, int, int, int]]:
    return [(s.action, s.months, s.days, s.level) for s in policy.deadlines[clock].steps]


def test_default_deadlines_are_the_programme_ones() -> None:
    policy = Policy()
    assert steps(policy, "presented") == [("remind", 0, 10, 1), ("time_out", 0, 15, 0)]
    assert steps(policy, "selected") == [
        ("remind", 0, 10, 1),
        ("escalate", 0, 15, 2),
        ("escalate", 0, 30, 3),
        ("time_out", 0, 45, 0),
    ]
    assert steps(policy, "contract_start") == [("escalate", 0, 30, 2)]
    assert steps(policy, "training_start") == [("escalate", 4, 15, 2)]
    assert (policy.deadlines["presented"].deadline_days, policy.deadlines["selected"].deadline_days) == (15, 15)
    assert policy.training_months == 4


def test_default_money_is_the_programme_one() -> None:
    s = Policy().subsidy
    assert (s.public_cents, s.private_cents, s.overseas_cents) == (5_000_000, 4_000_000, 7_000_000)
    assert sorted(s.overseas_departements) == [
        "971",
        "972",
        "973",
        "974",
        "975",
        "976",
        "977",
        "978",
        "986",
        "987",
        "988",
    ]
    assert (s.funded_months, s.convention_months, s.second_tranche_months) == (24, 36, 12)
    assert s.tranche_percents == [40, 30, 30]


def test_default_contract_rules_are_the_programme_ones() -> None:
    policy = Policy()
    assert policy.contract_types == ["CDI", "CDD", "PEC", "contrat_de_projet"]
    assert policy.rupture_reasons == ["licenciement", "demission", "non_reconduction_cdd", "fin_de_subventionnement"]


@pytest.mark.parametrize(
    ("day", "cents"),
    [
        (date(2024, 1, 1), 176_692),
        (date(2024, 10, 31), 176_692),
        (date(2024, 11, 1), 180_180),
        (date(2025, 6, 1), 180_180),
    ],
)
def test_default_smic_is_dated(day: date, cents: int) -> None:
    rate = Policy().smic_on(day)
    assert rate is not None
    assert rate.monthly_cents == cents


def test_no_smic_before_the_first_known_rate() -> None:
    first = Policy().smic[0].since
    assert Policy().smic_on(date.fromordinal(first.toordinal() - 1)) is None


def test_no_file_means_the_defaults(tmp_path: Path) -> None:
    assert load_policy(None) == Policy()
    assert load_policy(policy_file(tmp_path, "# nothing changed\n")) == Policy()


def test_file_overrides_only_the_values_it_names(tmp_path: Path) -> None:
    policy = load_policy(policy_file(tmp_path, THIRTY_DAYS + "\n[subsidy]\npublic_cents = 6000000\n"))
    assert policy.deadlines["presented"].deadline_days == 30
    assert steps(policy, "presented") == [("remind", 0, 20, 1), ("time_out", 0, 30, 0)]
    assert policy.subsidy.public_cents == 6_000_000
    defaults = Policy()
    assert policy.deadlines["selected"] == defaults.deadlines["selected"]
    assert policy.subsidy.private_cents == defaults.subsidy.private_cents
    assert policy.smic == defaults.smic


def test_sweep_follows_the_deadline_of_the_policy_file(
    world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONUM_POLICY_FILE", str(policy_file(tmp_path, THIRTY_DAYS)))
    world.policy = config.policy()
    case = world.present(world.structure(), world.candidate(), at="2026-03-01T10:00")
    assert get_case(world.engine, case)["deadline_at"] == "2026-03-31T10:00:00+02:00"

    def sweep(at: str) -> dict[str, int]:
        return batch.sweep(world.engine, parse_instant(at), world.policy).counts()

    assert sweep("2026-03-16T10:00") == {"reminded": 0, "escalated": 0, "timed_out": 0}  # the default day 15
    assert sweep("2026-03-21T10:00") == {"reminded": 1, "escalated": 0, "timed_out": 0}
    assert sweep("2026-03-31T09:59") == {"reminded": 0, "escalated": 0, "timed_out": 0}
    assert sweep("2026-03-31T10:00") == {"reminded": 0, "escalated": 0, "timed_out": 1}
    assert get_case(world.engine, case)["state"] == "expired"


def test_subsidy_follows_the_policy_file(world: Any, tmp_path: Path) -> None:
    world.policy = load_policy(policy_file(tmp_path, "[subsidy]\npublic_cents = 6000000\n"))
    view = get_case(world.engine, world.signed(start="2026-04-01", end="2028-03-31"))
    assert view["subsidy_cents"] == 6_000_000
    assert [t["amount_cents"] for t in view["tranches"]] == [2_400_000, 1_800_000, 1_800_000]


def test_malformed_toml_is_refused_with_what_to_fix(tmp_path: Path) -> None:
    path = policy_file(tmp_path, "[subsidy\npublic_cents = 6000000\n")
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert "not valid TOML" in str(err.value)
    assert "line 1" in str(err.value)
    assert "fix the file" in str(err.value)


def test_missing_policy_file_is_refused_with_what_to_fix(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found: fix CONUM_POLICY_FILE"):
        load_policy(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[subsidy]\npublic_cents = -5\n", "subsidy.public_cents"),
        ('[subsidy]\npublic_cents = "cinquante mille"\n', "subsidy.public_cents"),
        ("[subsidy]\ntranche_percents = [50, 30, 30]\n", "three shares adding up to 100"),
        ("training_months = 0\n", "training_months"),
        ('contract_types = "CDI"\n', "contract_types"),
        ('smic = [{ since = "2024-01-01", monthly_cents = 0 }]\n', "smic.0.monthly_cents"),
        ('smic = [{ since = "le 1er novembre", monthly_cents = 180180 }]\n', "smic.0.since"),
        ('[deadlines.presented]\nsteps = [{ action = "explode", days = 3 }]\n', "deadlines.presented.steps.0.action"),
        ('[deadlines.presented]\nsteps = [{ action = "escalate", days = 3, level = 4 }]\n', "steps.0.level"),
        ("[deadlines.presented]\ndeadline_days = -1\n", "deadlines.presented.deadline_days"),
        (
            '[deadlines.presented]\nsteps = [{ action = "time_out", days = 15 }, { action = "remind", days = 10 }]\n',
            "strictly increasing order",
        ),
    ],
)
def test_invalid_values_are_refused_naming_what_to_fix(tmp_path: Path, text: str, names: str) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy(policy_file(tmp_path, text))
    assert names in str(err.value)
    assert "fix these keys" in str(err.value)


def test_misspelt_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="publc_cents"):
        load_policy(policy_file(tmp_path, "[subsidy]\npublc_cents = 6000000\n"))


def test_time_out_before_the_deadline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"deadlines\.presented"):
        load_policy(policy_file(tmp_path, "[deadlines.presented]\ndeadline_days = 30\n"))


def test_a_new_smic_rate_adds_to_the_dated_table(tmp_path: Path) -> None:
    policy = load_policy(policy_file(tmp_path, "[[smic]]\nsince = 2027-01-01\nmonthly_cents = 185000\n"))
    assert policy.smic_on(date(2027, 1, 1)).monthly_cents == 185_000
    assert policy.smic_on(date(2024, 11, 1)).monthly_cents == 180_180  # the older rates are kept
