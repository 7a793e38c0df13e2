"""Subsidy, tranches and recovery, in integer cents.

The subsidy is modulated by contract length: funded months = min(contract
months, funded months of the policy), a CDI counting in full. Amounts round
down to the cent and the last tranche takes the remainder, so the three
tranches always add up to the subsidy exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from states.clock import add_months, whole_months
from states.policy import Policy


@dataclass(frozen=True)
class Grant:
    base_cents: int
    funded_months: int
    subsidy_cents: int
    amounts: tuple[int, int, int]
    second_due: date
    third_due: date


def base_cents(policy: Policy, kind: str, departement: str) -> int:
    s = policy.subsidy
    if departement in s.overseas_departements:
        return s.overseas_cents
    return s.private_cents if kind == "private" else s.public_cents


def funded_months(policy: Policy, contract_type: str, start: date, end: date | None) -> int:
    full = policy.subsidy.funded_months
    if contract_type == "CDI" or end is None:
        return full
    return min(whole_months(start, end), full)


def split(policy: Policy, subsidy: int) -> tuple[int, int, int]:
    p1, p2, _ = policy.subsidy.tranche_percents
    first = subsidy * p1 // 100
    second = subsidy * p2 // 100
    return first, second, subsidy - first - second


def grant(policy: Policy, kind: str, departement: str, contract_type: str, start: date, end: date | None) -> Grant:
    """Compute the subsidy of a contract and its tranche plan."""
    base = base_cents(policy, kind, departement)
    months = funded_months(policy, contract_type, start, end)
    subsidy = base * months // policy.subsidy.funded_months
    funded_end = add_months(start, months) - timedelta(days=1)
    second_due = min(add_months(start, policy.subsidy.second_tranche_months), funded_end)
    return Grant(base, months, subsidy, split(policy, subsidy), second_due, funded_end)


def earned(policy: Policy, subsidy: int, funded: int, start: date, ended: date) -> int:
    """Return the part of ``subsidy`` earned pro rata of whole months served up to ``ended``."""
    served = min(whole_months(start, ended), funded)
    return subsidy * served // funded if funded else 0
