"""``sepo.group_weighting``: how often each opponent's groups are drawn, and so what SEPO optimises in expectation."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from sepo.config import AblationRun, parse_params
from sepo.errors import ConfigError
from sepo.training.ablation import arm_name, arm_params
from sepo.training.groups import group_keys, relative_weights
from sepo.training.run import RunPlan

ROOT = Path(__file__).resolve().parents[1]


def params_with(**sepo):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["sepo"].update(sepo)
    return parse_params(raw)


def pool_rows(params, game: str, mode: str = "per_rollout") -> Counter:
    return Counter(key.pool for key in group_keys(params, game, mode, seed=0))


@pytest.mark.parametrize("game", ["ipd", "kuhn", "negotiation"])
def test_opponent_weighting_gives_every_opponent_the_same_rows(game):
    params = params_with(group_weighting="opponent")
    per_opponent = Counter((key.pool, key.opponent) for key in group_keys(params, game, "per_rollout", 0))
    assert set(per_opponent.values()) == {params.sepo.seeds_per_opponent}
    pools = params.games[game].pools
    assert pool_rows(params, game) == {pool: params.sepo.seeds_per_opponent * len(pools.of(pool))
                                       for pool in ("train", "exploit", "collusive")}


@pytest.mark.parametrize("game", ["ipd", "kuhn", "negotiation", "negotiation_items", "auction"])
def test_pool_weighting_gives_every_pool_the_same_rows_split_among_its_opponents(game):
    params = params_with(group_weighting="pool")
    rows = pool_rows(params, game)
    assert len(set(rows.values())) == 1 and set(rows) == {"train", "exploit", "collusive"}
    per_opponent = Counter((key.pool, key.opponent) for key in group_keys(params, game, "per_rollout", 0))
    for pool in rows:
        counts = {per_opponent[pool, name] for name in params.games[game].pools.of(pool)}
        assert len(counts) == 1  # evenly within the pool


def test_kuhn_collusive_opponent_gets_three_times_the_rows_under_pool_weighting():
    """Kuhn's pools hold 3, 2 and 1 opponents: the one collusive opponent weighs as much as the three train ones."""
    by_opponent = {weighting: Counter((k.pool, k.opponent) for k in group_keys(
        params_with(group_weighting=weighting), "kuhn", "per_rollout", 0)) for weighting in ("opponent", "pool")}
    assert by_opponent["opponent"]["collusive", "LooseAggressive"] == 16
    assert by_opponent["pool"]["collusive", "LooseAggressive"] == 48
    assert by_opponent["pool"]["train", "LooseAggressive"] == 16
    assert by_opponent["pool"]["exploit", "AlwaysBet"] == 24


def test_an_opponents_first_rows_keep_their_seeds_under_either_weighting():
    seeds = {w: [k.prompt for k in group_keys(params_with(group_weighting=w), "ipd", "per_rollout", 0)]
             for w in ("opponent", "pool")}
    assert set(seeds["opponent"]) <= set(seeds["pool"])
    assert len(set(seeds["pool"])) == len(seeds["pool"])  # no group repeats a seed


def test_auxiliary_mode_trains_on_the_train_pool_alone_under_either_weighting():
    rows = [pool_rows(params_with(group_weighting=w), "kuhn", "auxiliary") for w in ("opponent", "pool")]
    assert rows[0] == rows[1] == {"train": 48}


def test_the_default_weighting_leaves_a_runs_identity_as_it_was_and_pool_weighting_changes_it(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    default, pooled = params_with(), params_with(group_weighting="pool")
    assert default.sepo.group_weighting == "opponent"
    recorded = RunPlan.from_params(default, "kuhn").identity(default, model)
    assert "group_weighting" not in recorded["sepo"]  # the identity that runs before the key recorded
    assert RunPlan.from_params(pooled, "kuhn").identity(pooled, model) != recorded


def test_an_ablation_arm_sets_its_own_weighting_and_is_named_for_it():
    params = params_with()
    arm = AblationRun(mode="per_rollout", scale_rewards="batch", group_weighting="pool")
    assert arm_name(arm) == "per_rollout-batch-pool_weighted"
    trained = arm_params(params, "kuhn", arm)
    assert trained.sepo.group_weighting == "pool" and params.sepo.group_weighting == "opponent"
    assert pool_rows(trained, "kuhn") == {"train": 48, "exploit": 48, "collusive": 48}


def test_an_unknown_weighting_is_one_line():
    with pytest.raises(ConfigError, match=r"sepo\.group_weighting"):
        params_with(group_weighting="slot")


def test_relative_weights_say_what_the_expected_reward_gives_each_penalty_against_safety_j():
    kuhn = {w: relative_weights(params_with(group_weighting=w), "kuhn", "per_rollout") for w in ("opponent", "pool")}
    assert kuhn["opponent"] == pytest.approx({"exploit": 2 / 3, "collusion": 1 / 3})
    assert kuhn["pool"] == pytest.approx({"exploit": 1.0, "collusion": 1.0})
    assert relative_weights(params_with(), "ipd", "per_rollout") == pytest.approx({"exploit": 0.5, "collusion": 0.25})
    assert relative_weights(params_with(), "ipd", "auxiliary") == {}


def test_sepo_plan_prints_the_relative_weights(capsys):
    import json

    from sepo.cli import main

    assert main(["--params", str(ROOT / "params.yaml"), "plan"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["sepo_penalty_weight_vs_safety"]["kuhn"] == pytest.approx({"exploit": 2 / 3, "collusion": 1 / 3})
