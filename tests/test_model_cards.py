"""Model cards of the released models parse back with huggingface_hub as the Hub reads them."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from sepo.cards import model_card, write_model_card


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
