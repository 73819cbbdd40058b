"""Model cards of the released models parse back with huggingface_hub as the Hub reads them."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from sepo.cards import base_model_card, model_card, sft_model_card, write_model_card
from tests.model_fixtures import PARAMS


def test_sepo_adapter_card_round_trips_with_its_evaluation(tmp_path):
    card = model_card("sepo", model_name="sepo-ipd", game="ipd", parent="data/models/sft",
                      training={"steps": 4, "penalty.mode": "per_rollout"},
                      evaluation={"safety": -0.25, "pay": 2.28, "exploit": 0.94})
    path = write_model_card(tmp_path / "sepo" / "ipd", card)
    loaded = ModelCard.load(path)
    assert loaded.data.library_name == "peft" and loaded.data.pipeline_tag == "text-generation"
    assert {"sepo", "grpo", "lora", "ipd"} <= set(loaded.data.tags)
    results = {r.metric_type: r.metric_value for r in loaded.data.eval_results}
    assert results == {"safety": -0.25, "pay": 2.28, "exploit": 0.94}
    assert {r.dataset_type for r in loaded.data.eval_results} == {"sepo/ipd"}
    assert loaded.data.to_dict()["model-index"][0]["name"] == "sepo-ipd"
    assert "PeftModel.from_pretrained" in loaded.text and 'from_pretrained("data/models/sft")' in loaded.text
    assert "| `penalty.mode` | per_rollout |" in loaded.text


@pytest.mark.parametrize("role", ["base", "sft"])
def test_full_model_cards_load_with_transformers_and_name_their_hub_base(role, tmp_path):
    card = model_card(role, model_name=f"sepo-{role}", base_model="Qwen/Qwen3-0.6B" if role == "sft" else None)
    loaded = ModelCard.load(write_model_card(tmp_path, card))
    assert loaded.data.library_name == "transformers"
    assert loaded.data.base_model == ("Qwen/Qwen3-0.6B" if role == "sft" else None)
    assert loaded.data.eval_results is None and "model-index" not in loaded.content
    assert "AutoModelForCausalLM.from_pretrained(\"path/to/this/folder\")" in loaded.text


def test_unknown_role_is_refused():
    with pytest.raises(ValueError, match="role must be one of"):
        model_card("dpo", model_name="x")  # type: ignore[arg-type]


def test_the_sft_card_reports_its_run_and_a_lora_run_its_adapter(tmp_path):
    summary = {"steps": 4400, "train_examples": 2200, "final_logged_loss": 0.0278, "eval_loss": 0.0461}
    full = ModelCard.load(write_model_card(tmp_path / "full", sft_model_card(
        summary, PARAMS.sft.model_dump(), parent="data/models/base")))
    assert full.data.library_name == "transformers" and {"sft", "trl"} <= set(full.data.tags)
    assert "Trained from `data/models/base`." in full.text
    assert "| `optimizer steps` | 4400 |" in full.text and "| `validation loss` | 0.0461 |" in full.text
    assert f"| `sft.learning_rate` | {PARAMS.sft.learning_rate:.4g} |" in full.text
    assert "sft.lora.r" not in full.text  # full fine-tuning has no adapter to describe
    lora = PARAMS.sft.model_copy(update={"method": "lora"}).model_dump()
    card = ModelCard.load(write_model_card(tmp_path / "lora", sft_model_card(
        summary, lora, parent="data/models/base", base_model="Qwen/Qwen3.5-4B")))
    assert card.data.base_model == "Qwen/Qwen3.5-4B"
    assert f"| `sft.lora.r` | {lora['lora']['r']} |" in card.text


def test_the_tiny_base_card_describes_a_random_model_and_its_tokenizer(tmp_path):
    card = ModelCard.load(write_model_card(tmp_path, base_model_card(
        PARAMS.model.tiny.model_dump(), parameters=1_115_520, vocabulary=1024, examples=2200, seed=7)))
    assert card.data.library_name == "transformers" and card.data.base_model is None
    assert "| `parameters` | 1,115,520 |" in card.text and "| `model.seed` | 7 |" in card.text
    assert f"| `model.tiny.hidden_size` | {PARAMS.model.tiny.hidden_size} |" in card.text
    assert "byte-level BPE, 1024 tokens, trained on 2,200 SFT examples" in card.text
