"""The paper's architectures through every model stage, on tiny random replicas (``tests.replicas``).

Qwen3.5 (linear-attention + full-attention layers) and Gemma 4 (sliding and
full layers, shared-KV layers, per-layer embeddings, soft-capping, vision
and audio towers) crashed in the project's decode code before the first
rollout (issue 15).  Each replica here goes through SFT with LoRA on its
paper profile's targets, ``sft_validity``'s measurement, a SEPO-GRPO step
whose rollouts the replica itself plays, checkpoint selection, export,
reload, and evaluation on ipd and kuhn (NashConv included) through the
command line; and its greedy decoding must equal ``model.generate``.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
import yaml

from sepo.cli import main
from sepo.config import parse_params
from sepo.models.loading import load_model_and_tokenizer
from sepo.policies.decoding import StopRule
from sepo.policies.model import ModelPolicy, SamplingSettings, load_model_policy
from sepo.profiles import load_profile
from sepo.sft import train_sft
from sepo.training.run import RunPlan, train_and_select
from sepo.validity import measure_validity
from tests.model_fixtures import ROOT, scripted_chats
from tests.replicas import REPLICAS, replica_dir
from tests.test_sft import decision_rows

PROFILE = {"qwen35": "paper-qwen", "gemma4": "paper-gemma"}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("replicas"))


def small_params(lora: dict) -> object:
    """The committed params shrunk to seconds: 3-round IPD, short replies, one small GRPO step."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["games"]["ipd"]["rounds"] = 3
    raw["generation"].update({"max_new_tokens": 6, "batch_size": 64})
    raw["sepo"].update({"groups_per_step": 1, "num_threads": 1, "max_steps": 1, "save_steps": 1,
                        "selection_episodes": 1, "lora": {**lora, "r": 2, "alpha": 4, "dropout": 0.0}})
    raw["grpo"]["num_generations"] = 2
    raw["sft_validity"]["min_decisions"] = 4
    return parse_params(raw)


def adapted_layers(model) -> set[str]:
    """``layers.N.<module path>`` of every module that got a LoRA adapter."""
    names = {name.removesuffix(".lora_A") for name, _ in model.named_modules() if name.endswith(".lora_A")}
    return {re.sub(r"^.*?layers\.", "layers.", name) for name in names}


def test_greedy_decoding_equals_generate_on_a_left_padded_batch_whose_rows_stop_apart(root):
    for name in REPLICAS:
        model, tokenizer = load_model_and_tokenizer(replica_dir(name, root))
        every = scripted_chats()
        chats = [list(every[i][:2]) for i in range(0, len(every), len(every) // 6)][:6]  # every domain
        policy = ModelPolicy(model, tokenizer, SamplingSettings(max_new_tokens=10, greedy=True))
        # distinct reply openings: a random model's first tokens otherwise depend little on the chat
        prompts = [policy.render(c) + f"Action: {7 * i}" for i, c in enumerate(chats)]
        batch = tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
        assert len(set(batch["attention_mask"].sum(-1).tolist())) > 1  # really left-padded
        with torch.no_grad():
            reference = model.generate(**batch, do_sample=False, max_new_tokens=10, eos_token_id=None,
                                       pad_token_id=tokenizer.pad_token_id)[:, batch["input_ids"].shape[1]:]
        # a stop token that ends the rows at different steps (some never): exercises dropping finished rows
        rows = reference.tolist()
        candidates = sorted({t for row in rows for t in row})
        stop, ends = None, None
        for pair in ((a, b) for a in candidates for b in candidates if a <= b):
            ends = [next((i + 1 for i, t in enumerate(row) if t in pair), 10) for row in rows]
            if len(set(ends)) > 2 and min(ends) < 10:
                stop = frozenset(pair)
                break
        assert stop is not None, f"{name}: no stop tokens split the rows' stop steps"
        policy.stop_ids = stop
        policy._stop = StopRule(stop)
        got = [ids for ids, _ in policy.generate(prompts)]
        assert got == [row[:end] for row, end in zip(rows, ends, strict=True)], name


@pytest.mark.slow
@pytest.mark.parametrize("name", REPLICAS)
def test_a_replica_goes_through_every_model_stage(name, root, tmp_path):
    base = replica_dir(name, root)
    lora = load_profile(PROFILE[name])["sepo"]["lora"]
    params = small_params(lora)
    # SFT with LoRA on the profile's targets
    model, tokenizer = load_model_and_tokenizer(base)
    sft = params.sft.model_copy(update={
        "method": "lora", "completion_only_loss": True, "corpus": "decisions", "max_steps": 1,
        "per_device_train_batch_size": 2, "logging_steps": 1, "save_steps": 1, "bf16": False,
        "lora": params.sft.lora.model_copy(update={"r": 2, "alpha": 4, "target_modules": lora["target_modules"]})})
    rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in decision_rows(scripted_chats()[:1])]
    sft_dir = tmp_path / "sft"
    _, _, trained = train_sft(model, tokenizer, sft, rows[:2], [], sft_dir)
    layers = adapted_layers(trained)
    attention = {int(m.group(1)) for m in (re.match(r"layers\.(\d+)\.", n) for n in layers) if m}
    types = model.config.get_text_config().layer_types
    if name == "qwen35":  # q/k/v/o exist only in the full-attention layers
        assert attention == {i for i, t in enumerate(types) if t == "full_attention"}
    else:  # the language model's layers only, never the vision or audio towers
        assert attention == set(range(len(types)))
        assert not any("vision" in n or "audio" in n for n in layers)
    # sft_validity's measurement, through the stage's loader (adapter on its base)
    rates = measure_validity(params, load_model_policy(sft_dir, params))
    assert set(rates) == set(params.games) and all(0 <= r["invalid_rate"] <= 1 for r in rates.values())
    # one SEPO-GRPO step whose rollouts the replica plays, checkpoint selection, export
    plan = RunPlan.from_params(params, "ipd", max_steps=1)
    result = train_and_select(params, plan, sft_dir, tmp_path / "checkpoints", tmp_path / "sepo")
    assert result.summary["steps"] == 1 and result.summary["selection"]["best_step"] == 1
    assert (tmp_path / "sepo" / "adapter_model.safetensors").is_file()
    # reload the exported policy and evaluate it through the command line (kuhn writes a NashConv)
    small = tmp_path / "params.yaml"
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["generation"]["max_new_tokens"] = 6
    raw["games"]["ipd"]["rounds"] = 3
    small.write_text(yaml.safe_dump(raw))
    for game in ("ipd", "kuhn"):
        out = tmp_path / f"{game}.json"
        assert main(["--params", str(small), "evaluate", "--policy", f"model:{tmp_path / 'sepo'}", "--game", game,
                     "--episodes", "1", "--out", str(out)]) == 0
        report = json.loads(out.read_text())
        if game == "kuhn":
            assert "nashconv" in json.dumps(report).lower()


@pytest.mark.parametrize("name", REPLICAS)
def test_action_scores_of_a_replica_equal_a_plain_forward_pass(name, root):
    """The scoring path repeats a hybrid cache row-wise (``reorder_cache``); it must match no cache at all."""
    model, tokenizer = load_model_and_tokenizer(replica_dir(name, root))
    policy = ModelPolicy(model, tokenizer)
    chats = scripted_chats()
    contexts = [policy.render(list(chats[0][:2])), policy.render(list(chats[-1][:2])) + "I check the card.\n"]
    legal = [["COOPERATE", "DEFECT"], ["CHECK", "BET", "CALL", "FOLD"]]
    scores = policy.action_log_scores(contexts, legal)
    for context, actions, got in zip(contexts, legal, scores, strict=True):
        for action in actions:
            stem = tokenizer(context + "Action:", add_special_tokens=False)["input_ids"]
            full = tokenizer(context + "Action: " + action, add_special_tokens=False)["input_ids"]
            first = next(i for i, (a, b) in enumerate(zip([*stem, -1], full, strict=False)) if a != b)
            with torch.no_grad():
                logprobs = torch.log_softmax(model(input_ids=torch.tensor([full])).logits[0].float(), dim=-1)
            expected = sum(logprobs[t - 1, full[t]].item() for t in range(max(1, first), len(full)))
            assert got[action] == pytest.approx(expected, abs=1e-3), (name, action)
