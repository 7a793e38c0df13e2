"""The programme's policy as data: deadlines, money, SMIC, training.

Defaults are those of the programme's reference (see README, "Programme
rules"); an operator overrides any of them with a TOML file
(``CONUM_POLICY_FILE``) without a code change. Money is in integer cents.
"""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from states.errors import PolicyError


class Step(BaseModel):
    """One act of the sweep, at an offset from the instant that starts the state's clock."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["remind", "escalate", "time_out"]
    days: int = Field(0, ge=0)
    months: int = Field(0, ge=0)
    level: int = Field(0, ge=0, le=3, description="escalation level the case reaches (1 reminded, 2 préfet, 3 ANCT)")


class Clock(BaseModel):
    """The deadline of a clock (the programme's deadline for the step) and the sweep's acts on it."""

    model_config = ConfigDict(extra="forbid")

    deadline_days: int = Field(0, ge=0)
    deadline_months: int = Field(0, ge=0)
    steps: list[Step]

    @model_validator(mode="after")
    def _steps_in_order(self) -> Clock:
        keys = [(s.months, s.days) for s in self.steps]
        if keys != sorted(keys) or len(set(keys)) != len(keys):
            raise ValueError("steps must be listed in strictly increasing order of their offset")
        deadline = (self.deadline_months, self.deadline_days)
        if any(s.action == "time_out" and (s.months, s.days) < deadline for s in self.steps):
            raise ValueError("a time-out step cannot come before the deadline it enforces: move it or the deadline")
        return self


class SmicRate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: date
    monthly_cents: int = Field(gt=0)


class Subsidy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    public_cents: int = Field(5_000_000, gt=0)
    private_cents: int = Field(4_000_000, gt=0)
    overseas_cents: int = Field(7_000_000, gt=0)
    overseas_departements: list[str] = ["971", "972", "973", "974", "975", "976", "977", "978", "986", "987", "988"]
    funded_months: int = Field(24, gt=0)
    convention_months: int = Field(36, gt=0)
    tranche_percents: list[int] = [40, 30, 30]
    second_tranche_months: int = Field(12, gt=0, description="tranche 2 is due this many months after contract start")

    @model_validator(mode="after")
    def _split_is_whole(self) -> Subsidy:
        if len(self.tranche_percents) != 3 or sum(self.tranche_percents) != 100:
            raise ValueError("tranche_percents must be three shares adding up to 100")
        return self


DEFAULT_DEADLINES: dict[str, Clock] = {
    "presented": Clock(
        deadline_days=15, steps=[Step(action="remind", days=10, level=1), Step(action="time_out", days=15)]
    ),
    "selected": Clock(
        deadline_days=15,
        steps=[
            Step(action="remind", days=10, level=1),
            Step(action="escalate", days=15, level=2),
            Step(action="escalate", days=30, level=3),
            Step(action="time_out", days=45),
        ],
    ),
    "contract_start": Clock(deadline_days=30, steps=[Step(action="escalate", days=30, level=2)]),
    "training_start": Clock(deadline_months=4, steps=[Step(action="escalate", months=4, days=15, level=2)]),
    # a structure's application (assumptions): the préfet's opinion, then the committee's decision
    "opinion": Clock(
        deadline_days=15, steps=[Step(action="remind", days=10, level=1), Step(action="escalate", days=15, level=3)]
    ),
    "committee": Clock(
        deadline_days=30, steps=[Step(action="remind", days=20, level=1), Step(action="escalate", days=30, level=3)]
    ),
}

DEFAULT_SMIC = [
    SmicRate(since=date(2021, 1, 1), monthly_cents=155_458),
    SmicRate(since=date(2021, 10, 1), monthly_cents=158_947),
    SmicRate(since=date(2022, 1, 1), monthly_cents=160_312),
    SmicRate(since=date(2022, 5, 1), monthly_cents=164_558),
    SmicRate(since=date(2022, 8, 1), monthly_cents=167_895),
    SmicRate(since=date(2023, 1, 1), monthly_cents=170_928),
    SmicRate(since=date(2023, 5, 1), monthly_cents=174_720),
    SmicRate(since=date(2024, 1, 1), monthly_cents=176_692),
    SmicRate(since=date(2024, 11, 1), monthly_cents=180_180),
    SmicRate(since=date(2026, 1, 1), monthly_cents=182_303),
]


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deadlines: dict[str, Clock] = Field(default_factory=lambda: dict(DEFAULT_DEADLINES))
    smic: list[SmicRate] = Field(default_factory=lambda: list(DEFAULT_SMIC))
    subsidy: Subsidy = Field(default_factory=Subsidy)
    training_months: int = Field(4, gt=0)
    contract_types: list[str] = ["CDI", "CDD", "PEC", "contrat_de_projet"]
    rupture_reasons: list[str] = ["licenciement", "demission", "non_reconduction_cdd", "fin_de_subventionnement"]
    # how far after its signature a contract may start (assumption: the post is filled within the year)
    contract_start_horizon_months: int = Field(12, gt=0)
    # personal data of a non-retained candidate is anonymised this long after their last case ended
    retention_months: int = Field(3, gt=0)
    retention_consent_months: int = Field(24, gt=0)
    # the posts the committee may validate: nationally (seed), and per région where set (assumption: none)
    national_posts: int = Field(4000, ge=0)
    regional_posts: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete(self) -> Policy:
        missing = set(DEFAULT_DEADLINES) - set(self.deadlines)
        if missing:
            raise ValueError(f"deadlines must define the clocks {sorted(missing)}")
        unknown = set(self.deadlines) - set(DEFAULT_DEADLINES)
        if unknown:
            raise ValueError(f"unknown deadline clocks {sorted(unknown)}: the clocks are {sorted(DEFAULT_DEADLINES)}")
        self.smic = sorted(self.smic, key=lambda r: r.since)
        return self

    def smic_on(self, day: date) -> SmicRate | None:
        """Return the SMIC in force on ``day``, or None before the first known rate."""
        found = None
        for rate in self.smic:
            if rate.since <= day:
                found = rate
        return found


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_policy(path: str | Path | None) -> Policy:
    """Return the default policy, overridden by the TOML file at ``path`` if given."""
    if not path:
        return Policy()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"policy file {p} not found: fix CONUM_POLICY_FILE or create the file") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {p} is not valid TOML ({exc}): fix the file and retry") from None
    base = Policy().model_dump(mode="json")
    if isinstance(data.get("smic"), list):
        given = {str(r.get("since")): r for r in data["smic"] if isinstance(r, dict)}
        kept = [r for r in base["smic"] if r["since"] not in given]
        data = {**data, "smic": [r for r in data["smic"] if isinstance(r, dict)] + kept}
    try:
        return Policy.model_validate(_merge(base, data))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise PolicyError(f"policy file {p} is invalid ({problems}): fix these keys and retry") from None
