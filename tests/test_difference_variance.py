"""scripts/difference_variance.py: each stratum's share of a paired difference's bootstrap variance."""

from __future__ import annotations

from pathlib import Path

import pytest

from sepo.config import load_params
from sepo.games.protocol import play_scripted_episode
from tests.repo_files import load_repo_file

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(ROOT / "params.yaml")
SLOTS = (("train", "Mixed"), ("train", "TitForTat"), ("exploit", "AlwaysDefect"), ("collusive", "AlwaysCooperate"))


def episodes(agent: str) -> list:
    """Episodes in an order unlike the strata's (as an evaluation log's: opponents in params order), so a
    mix-up of list indices and strata positions shows."""
    game = PARAMS.game("ipd")
    played = [play_scripted_episode(game, PARAMS.strategy("ipd", agent), PARAMS.strategy("ipd", opponent), seed,
                                    pool) for pool, opponent in SLOTS for seed in range(24)]
    return played[::-1]


def test_only_strata_whose_episodes_vary_carry_variance_and_the_parts_add_up():
    script = load_repo_file("scripts/difference_variance.py")
    weights = PARAMS.games["ipd"].report_weights.model_dump()
    # both agents deterministic: only Mixed (a coin per round) makes episodes of a stratum differ
    whole, parts = script.stratum_variances(PARAMS.game("ipd"), episodes("TitForTat"), episodes("AlwaysDefect"),
                                            weights, "safety", samples=400, seed=0)
    assert parts[("train", "Mixed")] > 0
    for slot in SLOTS[1:]:
        assert parts[slot] == pytest.approx(0.0, abs=1e-12), slot
    assert sum(parts.values()) == pytest.approx(whole, rel=0.3)
    with pytest.raises(ValueError, match="same pools, opponents and seeds"):
        script.stratum_variances(PARAMS.game("ipd"), episodes("TitForTat")[:-1], episodes("AlwaysDefect")[1:],
                                 weights, "safety", samples=10, seed=0)
