"""A LoRA target given as one regular expression (Gemma's profile) reaches PEFT in both trainers."""

from __future__ import annotations

import re

from sepo.models.loading import load_model_and_tokenizer
from sepo.sft import train_sft
from sepo.training.run import RunPlan, build_trainer, load_policy_model
from tests.model_fixtures import PARAMS, scripted_chats
from tests.test_sft import decision_rows
from tests.test_training_chat_tokens import tiny_model_dir
from tests.test_training_trainer import training_params

#: the first layer's query and value projections only: plain suffixes cannot say that
PATTERN = r".*layers\.0\.self_attn\.(q_proj|v_proj)"


def adapted(model) -> set[str]:
    names = {name.removesuffix(".lora_A") for name, _ in model.named_modules() if name.endswith(".lora_A")}
    return {re.sub(r"^.*layers", "layers", name) for name in names}


def test_sft_lora_honours_a_target_pattern(tmp_path):
    model, tokenizer = load_model_and_tokenizer(tiny_model_dir())
    rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in decision_rows(scripted_chats()[:1])]
    sft = PARAMS.sft.model_copy(update={
        "method": "lora", "completion_only_loss": True, "corpus": "decisions", "max_steps": 1,
        "per_device_train_batch_size": 2, "logging_steps": 1, "save_steps": 1,
        "lora": PARAMS.sft.lora.model_copy(update={"r": 2, "alpha": 4, "target_modules": PATTERN})})
    _, _, trained = train_sft(model, tokenizer, sft, rows[:2], [], tmp_path / "adapter")
    assert adapted(trained) == {"layers.0.self_attn.q_proj", "layers.0.self_attn.v_proj"}


def test_sepo_lora_honours_a_target_pattern(tmp_path):
    params = training_params(lora={"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": PATTERN})
    model, tokenizer = load_policy_model(params, tiny_model_dir())
    trainer = build_trainer(params, RunPlan.from_params(params, "ipd", max_steps=1), model, tokenizer, tmp_path)
    assert adapted(trainer.model) == {"layers.0.self_attn.q_proj", "layers.0.self_attn.v_proj"}
