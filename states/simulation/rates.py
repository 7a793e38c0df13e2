"""How the people of the programme behave, and the two ways of drawing from it with a seeded generator.

A share is a probability, a span an inclusive range of days. All randomness
of a simulation goes through ``random.Random`` instances seeded from the
configuration: the same seed draws the same numbers in the same order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from states.errors import BadInput

Span = tuple[int, int]  # an inclusive range of days


@dataclass(frozen=True)
class Rates:
    """How the people of the programme behave. Shares are probabilities, spans inclusive day ranges.

    The defaults give a programme close to the real one: most posts filled
    within a few months, one presentation in five without a contract, about one
    contract in six broken before the end of its funding.
    """

    #: Structures apply over this many days after the start (most of them early).
    opening_days: int = 240
    #: Posts requested beyond the national envelope, as a share of it: the committee cannot validate them all.
    extra_requests: float = 0.25
    #: Chance that a structure withdraws its application before the committee, ``app_withdraw_days`` after applying.
    app_withdraw: float = 0.02
    app_withdraw_days: Span = (3, 20)
    #: The préfet gives an opinion within ``opinion_days``; late ones after the reminder (day 10) or the
    #: escalation (day 15).
    opinion_days: Span = (2, 9)
    late_opinion: float = 0.10
    late_opinion_days: Span = (11, 22)
    #: Chance that the préfet's opinion is unfavourable.
    unfavourable: float = 0.06
    #: The selection committee (COSELEC) meets every this many days; it decides at least ``committee_notice``
    #: days after the opinion.
    committee_every_days: int = 14
    committee_notice: int = 3
    #: Chance that the committee refuses an application with an unfavourable opinion, one with a favourable one,
    #: and that it validates fewer posts than requested.
    refuse_unfavourable: float = 0.80
    refuse_favourable: float = 0.03
    reduce: float = 0.15
    #: The structure signs its convention this many days after the committee; the first candidate is presented
    #: ``present_days`` later.
    convention_days: Span = (5, 30)
    #: The platform presents a candidate to a free post after this many days.
    present_days: Span = (2, 12)
    #: Chance that the candidate comes from the post's own département when one is free there.
    local: float = 0.75
    #: Chance that the candidate comes from the post's région otherwise.
    regional: float = 0.6
    #: Chance that the candidate presented is already presented to another structure
    #: (the first contract signed closes the other case).
    multi: float = 0.08
    #: Structure's answer to a presentation: declines (within ``answer_days``) ...
    decline: float = 0.12
    #: ... never answers (reminder at day 10, time-out at day 15) ...
    silent: float = 0.04
    #: ... answers after the time-out (the action is refused) ...
    too_late: float = 0.03
    #: ... answers after the reminder but before the deadline; the others answer in ``answer_days``.
    late_answer: float = 0.15
    answer_days: Span = (1, 9)
    late_answer_days: Span = (10, 14)
    too_late_days: Span = (16, 24)
    #: Chance that the candidate withdraws, at ``withdraw_days`` after the presentation (refused once signed).
    withdraw: float = 0.04
    withdraw_days: Span = (2, 20)
    #: Chance that the préfet cancels a case still before its contract.
    cancel: float = 0.01
    cancel_days: Span = (3, 12)
    #: After selection: contact with a training organisation, then signature.
    contact_days: Span = (1, 5)
    sign_days: Span = (1, 8)
    #: Signature after the préfet's escalation (day 15 from selection) ...
    late_sign: float = 0.12
    late_sign_days: Span = (16, 29)
    #: ... after the ANCT's escalation (day 30) ...
    very_late_sign: float = 0.03
    very_late_sign_days: Span = (31, 44)
    #: ... never (time-out at day 45).
    stall: float = 0.02
    #: Chance that the first salary offered is below the SMIC in force (refused, corrected the next day).
    below_smic: float = 0.02
    #: The contract starts this many days after its signature.
    contract_start_days: Span = (5, 30)
    #: Contract types and their shares.
    contract_types: tuple[tuple[str, float], ...] = (
        ("CDD", 0.70),
        ("PEC", 0.14),
        ("contrat_de_projet", 0.08),
        ("CDI", 0.08),
    )
    #: Contract lengths in months and their shares, by type (a CDI has no end).
    contract_months: tuple[tuple[str, tuple[tuple[int, float], ...]], ...] = (
        ("CDD", ((12, 0.12), (18, 0.13), (24, 0.50), (36, 0.25))),
        ("PEC", ((12, 0.45), (24, 0.55))),
        ("contrat_de_projet", ((18, 0.20), (24, 0.50), (36, 0.30))),
    )
    #: Share of contracts paid exactly the SMIC; the others get up to ``salary_premium`` above it.
    at_smic: float = 0.15
    salary_premium: float = 0.20
    #: Training starts this many days after the contract start; late ones after the escalation (day 30).
    training_days: Span = (0, 14)
    late_training: float = 0.08
    late_training_days: Span = (31, 50)
    #: Training ends this many days after its expected end (4 months); late ones after the escalation.
    completion_days: Span = (0, 7)
    late_completion: float = 0.05
    late_completion_days: Span = (16, 40)
    #: Chance that a contract breaks before its funding ends, and the reasons' shares.
    rupture: float = 0.16
    rupture_reasons: tuple[tuple[str, float], ...] = (
        ("demission", 0.45),
        ("non_reconduction_cdd", 0.25),
        ("fin_de_subventionnement", 0.15),
        ("licenciement", 0.15),
    )
    #: The structure records a rupture this many days after its date.
    rupture_declared_days: Span = (0, 5)
    #: Chance that a post freed by a rupture is filled again, after ``replace_days``.
    replace: float = 0.75
    replace_days: Span = (10, 45)
    #: Chance that a candidate leaves the pool for good after withdrawing, or after a rupture.
    leave_after_withdraw: float = 0.6
    leave_after_rupture: float = 0.4
    #: When no candidate is free, the platform tries again this many days later.
    retry_days: int = 7
    #: New presentations stop this many months after the start.
    recruitment_months: int = 15
    #: The simulation stops at the latest this many months after the start.
    horizon_months: int = 42

    def check(self) -> None:
        """Refuse rates that cannot describe people (a share outside 0..1, a span backwards)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not 0.0 <= value <= 1.0:
                raise BadInput(f"rate '{f.name}' is {value}: a share must lie between 0 and 1")
            if (
                isinstance(value, tuple)
                and len(value) == 2
                and all(isinstance(v, int) for v in value)
                and not 0 <= value[0] <= value[1]
            ):
                raise BadInput(f"span '{f.name}' is {value}: give (low, high) with 0 <= low <= high")
        answers = self.decline + self.silent + self.too_late + self.late_answer
        if answers > 1.0:
            raise BadInput(f"decline + silent + too_late + late_answer is {answers:.2f}: it must not exceed 1")
        signs = self.late_sign + self.very_late_sign + self.stall
        if signs > 1.0:
            raise BadInput(f"late_sign + very_late_sign + stall is {signs:.2f}: it must not exceed 1")
        if self.horizon_months <= self.recruitment_months:
            raise BadInput("horizon_months must be longer than recruitment_months: contracts need time to run")


def weighted(rng: random.Random, items: Sequence[tuple[Any, float]]) -> Any:
    """Draw one item of ``(item, weight)`` pairs, in proportion to the weights (one number drawn)."""
    total = sum(w for _, w in items)
    r = rng.random() * total
    for item, w in items:
        r -= w
        if r < 0:
            return item
    return items[-1][0]


def between(rng: random.Random, span: Span) -> int:
    """Draw a whole number of days within the inclusive ``span``."""
    return rng.randint(span[0], span[1])
