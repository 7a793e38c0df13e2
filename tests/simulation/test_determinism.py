"""The same seed gives the same programme, figures, mail and payment orders; another seed another programme."""

from __future__ import annotations

from pathlib import Path

from simulated import POLICY, SMALL, files, rows, run, without_paths

from states.simulation import Outcome, generate, make_config
from states.simulation.dayloop import inline_delivery


def test_same_seed_gives_the_same_programme_to_the_cent_whoever_delivers_the_mail(
    first: Outcome, tmp_path: Path
) -> None:
    # the first run delivers in its own process while the days go on; this one in the day loop itself
    again = run(tmp_path / "again", deliver=inline_delivery)
    assert without_paths(again) == without_paths(first)
    assert again.figures.to_dict() == first.figures.to_dict()
    assert rows(again) == rows(first)
    for folder in ("mail", "payments"):  # the same mail and payment orders, byte for byte
        assert files(again.report.parent / folder) == files(first.report.parent / folder)


def test_another_seed_gives_another_programme() -> None:
    one, two = (generate(make_config(SMALL, seed, None, POLICY)) for seed in (1, 2))
    assert one != two
    assert generate(make_config(SMALL, 1, None, POLICY)) == one
