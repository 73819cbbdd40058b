"""Paper profiles: they validate, plan offline to the paper's hyperparameters, and apply exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sepo.cli import main
from sepo.config import load_params
from sepo.errors import ConfigError
from sepo.models.token_types import zero_token_type_ids
from sepo.profiles import (
    PROFILES_DIR,
    apply_profile,
    dvc_overrides,
    leaves,
    merged,
    profile_names,
    resolve,
)

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
PAPER = ("paper-qwen", "paper-gemma")


def plan_of(name: str, capsys) -> dict:
    assert main(["--params", str(PARAMS), "plan", "--profile", name]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", PAPER)
def test_a_paper_profile_plans_the_papers_hyperparameters(name, capsys):
    plan = plan_of(name, capsys)
    assert plan["profile"] == name
    bases = {"paper-qwen": "Qwen/Qwen3.5-4B", "paper-gemma": "google/gemma-4-E4B-it"}
    assert plan["model"]["base"] == bases[name]
    sft = plan["sft"]["config"]
    assert (sft["learning_rate"], sft["lr_scheduler_type"], sft["warmup_steps"], sft["num_train_epochs"]) == (
        2e-5, "cosine", 0.05, 3)
    batch = (sft["per_device_train_batch_size"], sft["gradient_accumulation_steps"], sft["max_length"])
    assert batch == (2, 4, 2048)
    assert sft["bf16"] is True and sft["completion_only_loss"] is True and sft["max_steps"] == -1
    assert (plan["sft"]["lora"]["r"], plan["sft"]["lora"]["lora_alpha"]) == (32, 64)
    lora = plan["sepo"]["lora"]
    assert (lora["r"], lora["lora_alpha"], lora["lora_dropout"]) == (16, 32, 0.05)
    grpo = plan["sepo"]["grpo_config"]
    assert set(grpo) == {"ipd", "auction", "negotiation", "negotiation_items", "kuhn"}
    for game, config in grpo.items():
        expected = (3e-6, 0.2) if game == "kuhn" else (1e-5, 0.1)
        assert (config["learning_rate"], config["beta"]) == expected
        assert (config["num_generations"], config["max_steps"], config["save_steps"]) == (4, 100, 25)
        fixed = (config["lr_scheduler_type"], config["max_grad_norm"], config["epsilon"])
        assert fixed == ("constant", 1.0, 0.2)
    assert plan["generation"] == {"temperature": 0.8, "top_p": 0.95, "top_k": 50, "max_new_tokens": 512,
                                  "greedy": False, "batch_size": 64, "seed": 0}
    assert plan["eval_episodes_per_opponent"] == 16
    assert ("zero_token_type_ids" in plan["model"]["token_type_ids"]) == (name == "paper-gemma")


def test_a_wrong_profile_name_is_one_line_listing_the_valid_ones(capsys):
    assert main(["--params", str(PARAMS), "plan", "--profile", "paper-llama"]) == 2
    err = capsys.readouterr().err
    assert err == "sepo: error: unknown profile 'paper-llama'; valid: paper-gemma, paper-qwen\n"
    assert main(["--params", str(PARAMS), "profile", "tiny-gpu"]) == 2
    assert "valid: paper-gemma, paper-qwen" in capsys.readouterr().err


def test_planning_downloads_nothing(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_OFFLINE", None)
    done = subprocess.run([sys.executable, "-m", "sepo.cli", "--params", str(PARAMS), "plan", "--profile",
                           "paper-gemma"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model"]["base"] == "google/gemma-4-E4B-it"
    downloaded = [p for p in (tmp_path / "hf").rglob("*") if p.is_file()]
    assert downloaded == []


@pytest.mark.parametrize("name", PAPER)
def test_the_dvc_command_sets_exactly_the_profile(name, tmp_path):
    from dvc.utils.hydra import apply_overrides

    copy = tmp_path / "params.yaml"
    copy.write_text(PARAMS.read_text())
    apply_overrides(copy, dvc_overrides(PARAMS, name))  # what `dvc exp run -S ...` does to params.yaml
    assert load_params(copy) == resolve(PARAMS, name)


def test_apply_writes_the_profile_in_place_keeping_the_comments(tmp_path, capsys):
    copy = tmp_path / "params.yaml"
    copy.write_text(PARAMS.read_text())
    assert main(["--params", str(copy), "profile", "paper-qwen", "--apply"]) == 0
    assert "profile paper-qwen applied" in capsys.readouterr().out
    assert load_params(copy) == resolve(PARAMS, "paper-qwen")
    comments = [line.strip() for line in PARAMS.read_text().splitlines() if line.strip().startswith("#")]
    kept = [line.strip() for line in copy.read_text().splitlines() if line.strip().startswith("#")]
    assert kept == comments
    assert apply_profile(copy, "paper-qwen") == []  # applying twice changes nothing


def test_an_invalid_profile_never_reaches_the_params_file(tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "broken.yaml").write_text("grpo: {beta: -1}\n")
    copy = tmp_path / "params.yaml"
    copy.write_text(PARAMS.read_text())
    with pytest.raises(ConfigError, match=r"grpo\.beta"):
        apply_profile(copy, "broken", profiles)
    assert copy.read_text() == PARAMS.read_text()


def test_every_profile_file_validates():
    assert set(PAPER) <= set(profile_names())
    for name in profile_names(PROFILES_DIR):
        assert resolve(PARAMS, name).profile == name


settings_trees = st.recursive(
    st.integers() | st.text(max_size=3) | st.lists(st.integers(), max_size=2),
    lambda inner: st.dictionaries(st.sampled_from("abc"), inner, max_size=3), max_leaves=8)


def key_paths(tree: dict, prefix: str = "") -> set[str]:
    """Every dotted key of ``tree``, inner mappings included."""
    out = set()
    for key, value in tree.items():
        out.add(prefix + key)
        if isinstance(value, dict):
            out |= key_paths(value, prefix + key + ".")
    return out


@settings(deadline=None)  # a timing limit is not what this tests (it failed once in a busy run, passed on reruns)
@given(st.dictionaries(st.sampled_from("abcd"), settings_trees),
       st.dictionaries(st.sampled_from("cdef"), settings_trees))
def test_merging_keeps_the_base_and_sets_every_override_leaf(base, overrides):
    before = json.dumps(base, sort_keys=True)
    out = merged(base, overrides)
    assert json.dumps(base, sort_keys=True) == before
    out_leaves = dict(leaves(out))
    for key, value in leaves(overrides):
        assert out_leaves[key] == value
    touched = key_paths(overrides)
    for key, value in leaves(base):
        if not any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in touched):
            assert out_leaves[key] == value


def tiny_gemma4():
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration

    text = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, head_dim=16, global_head_dim=16,
                hidden_size_per_layer_input=8, vocab_size_per_layer_input=300, num_kv_shared_layers=0,
                layer_types=["sliding_attention", "full_attention"])
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                  num_key_value_heads=2, head_dim=16)
    torch.manual_seed(0)
    config = Gemma4Config(text_config=text, vision_config=vision, audio_config=None)
    return Gemma4ForConditionalGeneration(config)


def test_the_gemma_lora_targets_only_the_language_model_which_plain_names_cannot():
    from peft import get_peft_model

    lora = resolve(PARAMS, "paper-gemma").sepo.lora
    adapted = [name for name, _ in get_peft_model(tiny_gemma4(), lora.peft_config()).named_modules()
               if name.endswith("lora_A")]
    assert len(adapted) == 8 and all(".language_model.layers." in name for name in adapted)
    qwen_targets = resolve(PARAMS, "paper-qwen").sepo.lora.peft_config()
    with pytest.raises(ValueError, match="Gemma4ClippableLinear"):  # the vision tower's q_proj wrappers
        get_peft_model(tiny_gemma4(), qwen_targets)


def test_gemma_gets_zero_token_type_ids_even_behind_peft():
    from peft import get_peft_model

    model = tiny_gemma4().eval()
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    with torch.no_grad():
        explicit = model(input_ids=ids, mm_token_type_ids=torch.zeros_like(ids)).logits
    assert zero_token_type_ids(model) >= 1
    seen = []
    model.model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw.get("mm_token_type_ids")),
                                          with_kwargs=True)
    wrapped = get_peft_model(model, resolve(PARAMS, "paper-gemma").sepo.lora.peft_config())
    with torch.no_grad():
        logits = wrapped(input_ids=ids).logits
    assert seen and torch.equal(seen[-1], torch.zeros_like(ids))
    torch.testing.assert_close(logits, explicit)
