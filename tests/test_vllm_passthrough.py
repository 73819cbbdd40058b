"""``grpo.use_vllm`` / ``grpo.vllm_mode`` reach TRL's GRPOConfig; off by default; not part of a run's identity
(nor are the decode-loop settings of ``generation``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sepo.cli import main
from sepo.config import parse_params
from sepo.errors import ConfigError
from sepo.training.run import RunPlan, grpo_config

ROOT = Path(__file__).resolve().parents[1]


def params_with(generation=None, **grpo):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["grpo"].update(grpo)
    raw["generation"].update(generation or {})
    return parse_params(raw)


def test_vllm_is_off_by_default(tmp_path):
    params = params_with()
    config = grpo_config(params, RunPlan.from_params(params, "ipd"), tmp_path)
    assert params.grpo.use_vllm is False and config.use_vllm is False


def test_use_vllm_and_its_mode_reach_the_grpo_config_with_the_sampling_settings(tmp_path):
    params = params_with(use_vllm=True, vllm_mode="server")
    config = grpo_config(params, RunPlan.from_params(params, "kuhn"), tmp_path)
    g = params.generation
    assert (config.use_vllm, config.vllm_mode) == (True, "server")
    assert (config.temperature, config.top_p, config.top_k) == (g.temperature, g.top_p, g.top_k)
    assert config.max_completion_length == g.max_new_tokens
    assert config.vllm_importance_sampling_correction is False  # the rollouts return no sampling log-probs


def test_a_wrong_vllm_mode_is_one_line():
    with pytest.raises(ConfigError, match=r"grpo\.vllm_mode"):
        params_with(vllm_mode="remote")


def test_the_sampling_backend_does_not_change_a_runs_identity(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    decoding = {"fast_decode": "on", "fast_decode_slots": 8, "fast_decode_capacity": 512, "batch_size": 16}
    identities = [RunPlan.from_params(p, "ipd").identity(p, model)
                  for p in (params_with(), params_with(use_vllm=True, vllm_mode="server"),
                            params_with(generation=decoding))]
    assert identities[0] == identities[1] == identities[2]
    sampled = params_with(generation={"temperature": 0.5})  # what is sampled does change it
    assert RunPlan.from_params(sampled, "ipd").identity(sampled, model) != identities[0]


@pytest.mark.parametrize("name", ["paper-qwen", "paper-gemma"])
def test_the_plan_shows_use_vllm(name, capsys):
    assert main(["--params", str(ROOT / "params.yaml"), "plan", "--profile", name]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {config["use_vllm"] for config in plan["sepo"]["grpo_config"].values()} == {False}
