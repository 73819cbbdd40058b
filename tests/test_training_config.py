"""SEPO params: unknown modes fail at the start in one line that lists the valid values."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import yaml

from sepo.config import PenaltyMode, ScaleRewards, load_params, parse_params
from sepo.errors import ConfigError
from sepo.reward import PENALTY_MODES, SCALE_REWARDS
from stages import sepo_train

ROOT = Path(__file__).resolve().parents[1]


def _raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_the_schema_and_the_reward_module_agree_on_the_valid_values():
    assert typing.get_args(PenaltyMode) == PENALTY_MODES
    assert typing.get_args(ScaleRewards) == SCALE_REWARDS


@pytest.mark.parametrize(("section", "key", "valid"), [
    ("penalty", "mode", "'per_rollout', 'constant', 'auxiliary' or 'none'"),
    ("grpo", "scale_rewards", "'group', 'batch' or 'none'"),
])
def test_an_unknown_mode_is_one_line_naming_the_key_and_the_valid_values(section, key, valid):
    raw = _raw()
    raw[section][key] = "sometimes"
    with pytest.raises(ConfigError) as error:
        parse_params(raw)
    message = str(error.value)
    assert "\n" not in message and f"{section}.{key}" in message and valid in message


def test_the_stage_refuses_an_unknown_mode_before_writing_anything(tmp_path, capsys):
    raw = _raw()
    raw["penalty"]["mode"] = "per-rollout"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    outputs = {name: tmp_path / name for name in ("checkpoints", "model", "metrics.json", "plots")}
    code = sepo_train.main(["--params", str(params), "--game", "ipd", "--model", str(tmp_path),
                            "--checkpoints", str(outputs["checkpoints"]), "--out", str(outputs["model"]),
                            "--metrics", str(outputs["metrics.json"]), "--plots", str(outputs["plots"])])
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "penalty.mode" in error and "'per_rollout'" in error
    assert not any(path.exists() for path in outputs.values())


def test_an_unknown_game_or_missing_model_is_one_line(tmp_path, capsys):
    common = ["--checkpoints", str(tmp_path / "c"), "--out", str(tmp_path / "m"), "--metrics",
              str(tmp_path / "x.json"), "--plots", str(tmp_path / "p")]
    assert sepo_train.main(["--params", str(ROOT / "params.yaml"), "--game", "chess", *common]) == 2
    assert "unknown game 'chess'" in capsys.readouterr().err
    assert sepo_train.main(["--params", str(ROOT / "params.yaml"), "--game", "ipd",
                            "--model", str(tmp_path / "nope"), *common]) == 2
    assert "model path not found" in capsys.readouterr().err


def test_game_overrides_apply_to_their_domain_only():
    params = load_params(ROOT / "params.yaml")
    kuhn, ipd = params.grpo.for_game("kuhn"), params.grpo.for_game("ipd")
    assert kuhn.beta == params.grpo.game_overrides["kuhn"].beta
    assert ipd == params.grpo
    raw = _raw()
    raw["grpo"]["game_overrides"] = {"chess": {"beta": 0.3}}
    with pytest.raises(ConfigError, match=r"grpo\.game_overrides\.chess: unknown game"):
        parse_params(raw)


def test_a_run_plan_refuses_unknown_modes_from_code_too():
    from sepo.training.run import RunPlan

    params = load_params(ROOT / "params.yaml")
    with pytest.raises(ValueError, match="valid: per_rollout, constant, auxiliary, none"):
        RunPlan.from_params(params, "ipd", mode="sometimes")
    with pytest.raises(ValueError, match="valid: group, batch, none"):
        RunPlan.from_params(params, "ipd", scale_rewards="std")
    plan = RunPlan.from_params(params, "kuhn", mode="constant", max_steps=3)
    kuhn_beta = params.grpo.game_overrides["kuhn"].beta
    assert (plan.mode, plan.max_steps, plan.grpo.beta) == ("constant", 3, kuhn_beta)


def test_episodes_per_row_and_domain_follow_row_then_domain_then_default():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["eval"].update(episodes=32, game_episodes={"negotiation_items": 160}, row_episodes={"base": 4})
    params = parse_params(raw)
    assert params.eval.episodes_for("sft", "ipd") == 32
    assert params.eval.episodes_for("sft", "negotiation_items") == 160
    assert params.eval.episodes_for("sepo-seed1", "negotiation_items") == 160
    assert params.eval.episodes_for("base", "negotiation_items") == 4
