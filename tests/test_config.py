"""params.yaml validation: every mistake is one line naming the key."""

import copy
from pathlib import Path

import pytest
import yaml

from sepo.config import load_params, parse_params
from sepo.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())


def _broken(path: str, value):
    raw = copy.deepcopy(RAW)
    node = raw
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return raw


def _error(raw) -> str:
    with pytest.raises(ConfigError) as info:
        parse_params(raw)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_committed_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert set(params.games) == {"ipd", "auction", "negotiation", "negotiation_items", "kuhn"}


def test_unknown_opponent_names_the_key_and_the_valid_names():
    message = _error(_broken("games.ipd.pools.train", ["TitForTat", "Nope"]))
    assert "games.ipd.pools.train.1" in message and "'Nope'" in message and "AlwaysDefect" in message


def test_unknown_game_lists_the_valid_games():
    raw = copy.deepcopy(RAW)
    raw["games"]["chess"] = raw["games"]["ipd"]
    message = _error(raw)
    assert "games.chess" in message and "negotiation_items" in message


def test_shares_must_sum_to_one():
    message = _error(_broken("games.kuhn.demonstrators", {"NashApprox": 0.5, "TightValue": 0.4}))
    assert message.startswith("params: games.kuhn.demonstrators") and "sum to 1" in message


def test_negative_or_zero_counts_are_rejected():
    assert "games.ipd.rounds" in _error(_broken("games.ipd.rounds", 0))
    assert "eval.episodes" in _error(_broken("eval.episodes", -3))


def test_unknown_keys_are_rejected():
    assert "eval.episodez" in _error(_broken("eval.episodez", 3))


def test_missing_file_and_bad_yaml_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("games: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


def test_strategy_overrides_reach_the_strategy():
    params = parse_params(_broken("games.ipd.strategies", {"GenerousTFT": {"forgive": 0.9}}))
    assert params.strategy("ipd", "GenerousTFT").forgive == 0.9


def test_ablation_arms_evaluate_a_domains_own_episode_count():
    from sepo.config import load_params

    ablation = load_params("params.yaml").ablation.model_copy(update={"eval_episodes": 5,
                                                                      "game_eval_episodes": {"ipd": 7}})
    assert (ablation.eval_episodes_for("ipd"), ablation.eval_episodes_for("kuhn")) == (7, 5)
